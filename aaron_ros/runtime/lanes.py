"""Lanes: where stages run. A CPU lane is a worker thread with its own intra-op thread budget; a
CUDA lane is a worker thread bound to one CUDA stream with a priority. Both take work through
`submit` and hand back a future of a `LaneRun` with the measured time.

CUDA lanes time with events on their own stream and wait on that stream's event only, never on a
device-wide synchronise, so lanes do not stall one another.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch

from aaron_ros.common.cpu import name_os_thread

log = logging.getLogger(__name__)

LANE_KINDS = ("cpu", "cuda")


@dataclass(frozen=True)
class LaneSpec:
    """How to build one lane (as written in YAML)."""

    name: str
    kind: str = "cpu"
    threads: int = 1  # intra-op threads (CPU lanes)
    priority: int = 0  # stream priority (CUDA lanes); lower is more urgent, as in CUDA
    sms: int | None = None  # SM budget (CUDA lanes), through a green context
    device: int = 0

    def __post_init__(self) -> None:
        if self.kind not in LANE_KINDS:
            raise ValueError(f"lane '{self.name}': kind must be one of {LANE_KINDS}, got '{self.kind}'")
        if self.threads < 1:
            raise ValueError(f"lane '{self.name}': threads must be >= 1, got {self.threads}")
        if self.sms is not None and (self.kind != "cuda" or self.sms < 1):
            raise ValueError(f"lane '{self.name}': sms needs a CUDA lane and a count >= 1, got {self.sms}")


@dataclass(frozen=True)
class LaneRun:
    """The result of one piece of work on a lane."""

    output: Any
    seconds: float  # run time of the work itself (CUDA: between the stream's events)
    lane: str
    started: float  # time.perf_counter() when the lane began the work
    finished: float  # time.perf_counter() when the result was ready on the host side
    cpu_s: float = 0.0  # CPU time of the lane's own thread on the work (intra-op helpers not included)


def exact_float32() -> None:
    """CUDA matmuls and convolutions in full float32, as the reference computes: TF32, torch's
    default for cuDNN convolutions, errs by about 1e-3, ten times a version's check tolerance."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


class Lane:
    """One lane. All work submitted to a lane runs in order, one piece at a time."""

    def __init__(self, spec: LaneSpec):
        self.spec = spec
        self.stream = None
        self.green_context = None
        if spec.kind == "cuda":
            made = self._make_stream(spec)
            # A green-context lane keeps its context alive beside the stream it runs on.
            self.green_context, self.stream = made if isinstance(made, tuple) else (None, made)
        # One daemon thread per lane, not a thread pool: a stage that never returns must not hold
        # the process at its exit (a pool's threads are joined then), and a hand-off is one queue put.
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"lane-{spec.name}_0", daemon=True)
        self._thread.start()

    @staticmethod
    def _make_stream(spec: LaneSpec):
        if not torch.cuda.is_available():
            raise RuntimeError(f"lane '{spec.name}' is a CUDA lane but no CUDA device is available")
        exact_float32()
        if spec.sms is None:
            # Out-of-range priorities are mapped to the nearest valid one by torch.
            return torch.cuda.Stream(device=spec.device, priority=spec.priority)
        from torch.cuda import green_contexts

        if not green_contexts.SUPPORTED:
            raise RuntimeError(f"lane '{spec.name}' asks for an SM budget but this torch build "
                               "has no green-context support")
        ctx = green_contexts.GreenContext.create(num_sms=spec.sms, device_id=spec.device)
        return ctx, ctx.Stream()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", self.spec.device) if self.kind == "cuda" else torch.device("cpu")

    def _init_thread(self) -> None:
        # Holds for this thread only: each lane gets its own intra-op budget. torch makes the
        # setting thread-local only once the thread has read it: read first, or the thread
        # takes whatever count another thread set last.
        name_os_thread(threading.current_thread().name)  # before torch starts its helpers here
        torch.get_num_threads()
        torch.set_num_threads(self.spec.threads)
        if self.kind == "cuda":
            torch.cuda.set_device(self.spec.device)

    def _serve(self) -> None:
        try:
            self._init_thread()
            broken = None
        except Exception as exc:  # every piece of work fails, naming why
            broken = RuntimeError(f"lane '{self.name}' could not start: {type(exc).__name__}: {exc}")
        while (item := self._work.get()) is not None:
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                if broken is not None:
                    raise broken
                fut.set_result(self._run(fn, args))
            except BaseException as exc:
                fut.set_exception(exc)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[LaneRun]:
        if self._closed:
            raise RuntimeError(f"lane '{self.name}' is closed")
        fut: Future = Future()
        self._work.put((fut, fn, args))
        return fut

    def run(self, fn: Callable[..., Any], *args: Any) -> LaneRun:
        return self.submit(fn, *args).result()

    def _run(self, fn: Callable[..., Any], args: tuple) -> LaneRun:
        with torch.inference_mode():
            if self.stream is None:
                c0, t0 = time.thread_time(), time.perf_counter()
                out = fn(*args)
                t1 = time.perf_counter()
                return LaneRun(out, t1 - t0, self.name, t0, t1, time.thread_time() - c0)
            return self._run_cuda(fn, args)

    def _run_cuda(self, fn: Callable[..., Any], args: tuple) -> LaneRun:
        stream = self.stream
        for a in args:
            # Inputs made on another lane's stream: keep the allocator from reusing their memory
            # while this stream may still read it.
            if isinstance(a, torch.Tensor) and a.is_cuda:
                a.record_stream(stream)
        start = torch.cuda.Event(enable_timing=True, blocking=True)
        end = torch.cuda.Event(enable_timing=True, blocking=True)
        c0, t0 = time.thread_time(), time.perf_counter()
        with torch.cuda.stream(stream):
            start.record(stream)
            out = fn(*args)
            end.record(stream)
        end.synchronize()  # this stream's event only
        t1 = time.perf_counter()
        return LaneRun(out, start.elapsed_time(end) / 1e3, self.name, t0, t1, time.thread_time() - c0)

    def close(self, timeout: float | None = None) -> bool:
        """Take no more work; what was submitted still runs, waited for at most `timeout` s (None:
        for ever). False when work is still running then: its thread is left behind (a daemon, it
        does not hold the process at exit)."""
        self._closed = True
        self._work.put(None)
        if self._thread is threading.current_thread():  # closed from its own work: it ends after it
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("lane %s: a stage still runs after %s s; left behind", self.name, timeout)
            return False
        return True

    def __repr__(self) -> str:
        extra = f"threads={self.spec.threads}" if self.kind == "cpu" else f"priority={self.spec.priority}"
        return f"Lane({self.name}, {self.kind}, {extra})"


class LanePool:
    """A named set of lanes, built from specs, closed together."""

    def __init__(self, specs: Iterable[LaneSpec]):
        specs = list(specs)
        if not specs:
            raise ValueError("a lane pool needs at least one lane")
        names = [s.name for s in specs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate lane names: {dup}")
        self.lanes: dict[str, Lane] = {}
        try:
            for s in specs:
                self.lanes[s.name] = Lane(s)
        except Exception:
            self.close()
            raise

    def __getitem__(self, name: str) -> Lane:
        try:
            return self.lanes[name]
        except KeyError:
            raise KeyError(f"no lane named '{name}'; lanes: {sorted(self.lanes)}") from None

    def __iter__(self):
        return iter(self.lanes.values())

    def __len__(self) -> int:
        return len(self.lanes)

    def close(self, timeout: float | None = None) -> bool:
        """Close every lane, waiting `timeout` s at most in all (None: for ever); False when a
        lane's work was still running then."""
        end = None if timeout is None else time.monotonic() + timeout
        return all([lane.close(None if end is None else max(0.0, end - time.monotonic()))
                    for lane in self.lanes.values()])

    def __enter__(self) -> LanePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def resolve_kind(kind: str) -> str:
    """'auto' means CUDA when a device is present, else CPU."""
    if kind == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if kind not in LANE_KINDS:
        raise ValueError(f"lane kind must be 'auto' or one of {LANE_KINDS}, got '{kind}'")
    return kind


def uniform_specs(count: int, kind: str = "auto", threads: int | None = None,
                  priorities: Iterable[int] | None = None) -> list[LaneSpec]:
    """`count` lanes of one kind. CPU lanes share the cores evenly unless `threads` is given."""
    if count < 1:
        raise ValueError(f"lane count must be >= 1, got {count}")
    kind = resolve_kind(kind)
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // count)
    prios = list(priorities) if priorities is not None else [0] * count
    if len(prios) != count:
        raise ValueError(f"{count} lanes but {len(prios)} priorities")
    return [LaneSpec(name=f"{kind}{i}", kind=kind, threads=threads, priority=p) for i, p in enumerate(prios)]
