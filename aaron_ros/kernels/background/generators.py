"""Background load: a context manager that keeps worker threads loading one channel of a device
(compute, memory, or real models) at one level while its body runs, and measures what it took.

CPU workers run with one intra-op thread each and pace themselves by duty cycle: work for a
~2 ms slice, then sleep so that work / (work + sleep) = duty. CUDA workers each own a
lowest-priority stream, pace by the GPU time of each slice (timed with events) and wait on
their own stream's events only, never on a device-wide synchronise, so foreground work on
higher-priority streams is not held up by them.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import torch

from .levels import Load, cores, load_for
from .workloads import Workload, compute_workload, memory_workload, model_workload, zoo_model

THREAD_PREFIX = "contention"
SLICE_S = 2e-3  # work between pauses: short, so the load is even at millisecond scale
START_TIMEOUT_S = 300.0  # first CUDA use or a cold model build can take a while
LOWEST_PRIORITY = 0  # CUDA stream priorities: 0 is the least urgent, negative more urgent


@dataclass(frozen=True)
class BackgroundStats:
    """What one Background measured, from the moment its load was running until it stopped.

    share: CPU, CPU seconds of the workers / (wall seconds x cores); CUDA, the share of wall time
    during which some background kernel was executing (union of the event-timed slices).
    """

    kind: str
    level: str
    device: str
    workers: int
    wall_s: float
    cpu_s: float
    share: float
    iterations: int
    gbps: float | None = None  # memory kind: DRAM traffic achieved (read + write)

    @property
    def rate(self) -> float:
        """Iterations per second."""
        return self.iterations / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "rate": self.rate}


@dataclass
class _Tally:
    """One worker's counts; written by the worker, read once it has stopped."""

    iterations: int = 0
    bytes: int = 0
    cpu_s: float = 0.0
    stopped: float = 0.0  # time.perf_counter() when the worker left its loop
    spans: list[tuple[float, float]] = field(default_factory=list)  # CUDA: busy seconds after `ref`
    error: BaseException | None = None


def _pause(stop: threading.Event, busy_s: float, duty: float) -> None:
    if duty < 1.0:
        stop.wait(busy_s * (1.0 - duty) / duty)


def _cpu_loop(work: Workload, duty: float, stop: threading.Event, tally: _Tally) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        n = 0
        while True:  # at least one step, even when a step is longer than a slice (models)
            work.step()
            n += 1
            if time.perf_counter() - t0 >= SLICE_S:
                break
        tally.iterations += n
        _pause(stop, time.perf_counter() - t0, duty)


def _cuda_loop(work: Workload, duty: float, stop: threading.Event, tally: _Tally,
               stream: torch.cuda.Stream, ref: torch.cuda.Event) -> None:
    steps = 1  # per slice; adapted so a slice takes ~SLICE_S of GPU time
    while not stop.is_set():
        start = torch.cuda.Event(enable_timing=True)
        # Blocking: the wait below sleeps instead of spinning a CPU core.
        end = torch.cuda.Event(enable_timing=True, blocking=True)
        start.record(stream)
        for _ in range(steps):
            work.step()
        end.record(stream)
        end.synchronize()  # this stream's event only
        busy_s = start.elapsed_time(end) / 1e3
        tally.spans.append((ref.elapsed_time(start) / 1e3, ref.elapsed_time(end) / 1e3))
        tally.iterations += steps
        steps = max(1, min(2 * steps, round(steps * SLICE_S / max(busy_s, 1e-6))))
        _pause(stop, busy_s, duty)


def union_seconds(spans: list[tuple[float, float]]) -> float:
    """Total length of the union of intervals (overlapping streams count once)."""
    total, reach = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


class Background:
    """Background load of one kind at one level on one device, for the duration of a `with`.

    Entering returns once every worker has built its work and done one step; leaving stops and
    joins every worker (also when the body raised) and sets `.stats`. `isolation` runs nothing.
    Each entry starts a fresh run, so one Background can be entered again.
    """

    def __init__(self, kind: str, level: str, device: str | torch.device = "cpu"):
        self.load: Load = load_for(kind, level, device)
        self.stats: BackgroundStats | None = None
        self._threads: list[threading.Thread] = []
        self._tallies: list[_Tally] = []
        self._stop = threading.Event()
        self._t0 = 0.0

    @property
    def kind(self) -> str:
        return self.load.kind

    @property
    def level(self) -> str:
        return self.load.level

    @property
    def device(self) -> torch.device:
        return self.load.device

    @property
    def iterations(self) -> int:
        """Steps done so far in this run (live, for progress display)."""
        return sum(t.iterations for t in self._tallies)

    def _makers(self) -> list[Callable[[], Workload]]:
        """One workload factory per worker, called in the worker's thread (so its buffers are
        first touched, and on NUMA machines placed, where they are used)."""
        load, dev = self.load, self.load.device
        if load.kind == "model":
            for name in load.models:
                zoo_model(name, dev)  # build here, once, not in several workers at the same time
            return [lambda name=name: model_workload(name, dev) for name in load.models]
        make = compute_workload if load.kind == "compute" else memory_workload
        return [lambda: make(dev)] * load.workers

    def __enter__(self) -> Background:
        self.stats = None
        self._stop = threading.Event()
        makers = self._makers()
        self._tallies = [_Tally() for _ in makers]
        ready = threading.Barrier(len(makers) + 1, timeout=START_TIMEOUT_S)
        ref = None
        if self.device.type == "cuda" and makers:
            # Common time origin for all workers' event-timed spans, on an idle stream of its own
            # so that it completes at once.
            ref = torch.cuda.Event(enable_timing=True, blocking=True)
            ref.record(torch.cuda.Stream(device=self.device))
        self._threads = [
            threading.Thread(target=self._work, args=(make, tally, ready, ref), daemon=True,
                             name=f"{THREAD_PREFIX}-{self.kind}-{self.level}-{i}")
            for i, (make, tally) in enumerate(zip(makers, self._tallies))
        ]
        for thread in self._threads:
            thread.start()
        if ref is not None:
            ref.synchronize()
        try:
            ready.wait()
        except BaseException as e:
            self._stop_workers()
            if not isinstance(e, threading.BrokenBarrierError):
                raise
            raise RuntimeError(f"background {self.kind}/{self.level} failed to start "
                               f"(within {START_TIMEOUT_S:.0f} s)") from self._first_error()
        self._t0 = time.perf_counter()
        return self

    def _work(self, make: Callable[[], Workload], tally: _Tally, ready: threading.Barrier,
              ref: torch.cuda.Event | None) -> None:
        try:
            torch.set_num_threads(1)  # this thread only: one core's worth per worker
            with torch.inference_mode():
                if self.device.type == "cpu":
                    work = make()
                    work.step()  # warm-up: first-call allocations and kernel selection are not load
                    loop = _cpu_loop
                else:
                    torch.cuda.set_device(self.device)
                    stream = torch.cuda.Stream(device=self.device, priority=LOWEST_PRIORITY)
                    torch.cuda.set_stream(stream)  # this thread's current stream from here on
                    work = make()
                    work.step()
                    stream.synchronize()  # this worker's own stream
                    loop = partial(_cuda_loop, stream=stream, ref=ref)
                ready.wait()
                cpu0 = time.thread_time()
                try:
                    loop(work, self.load.duty, self._stop, tally)
                finally:
                    tally.cpu_s = time.thread_time() - cpu0
                    tally.stopped = time.perf_counter()
                    tally.bytes = tally.iterations * work.bytes_per_step
        except threading.BrokenBarrierError:
            pass  # the start was abandoned; whoever broke it reports why
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the tally
            tally.error = e
            ready.abort()

    def _stop_workers(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __exit__(self, exc_type, exc, tb) -> None:
        end = time.perf_counter()
        self._stop_workers()
        self.stats = self._measure(end)
        failed = self._first_error()
        if failed is not None and exc is None:
            raise RuntimeError(f"a background {self.kind}/{self.level} worker failed") from failed

    def _first_error(self) -> BaseException | None:
        return next((t.error for t in self._tallies if t.error is not None), None)

    def _measure(self, end: float) -> BackgroundStats:
        tallies = self._tallies
        # Workers finish the step they are in after the stop: count until the last one stopped,
        # so the CPU seconds and the wall seconds cover the same window.
        wall = max([end, *(t.stopped for t in tallies)]) - self._t0
        cpu = sum(t.cpu_s for t in tallies)
        if self.device.type == "cuda":
            share = union_seconds([s for t in tallies for s in t.spans]) / wall
        else:
            share = cpu / (wall * cores())
        return BackgroundStats(
            kind=self.kind, level=self.level, device=str(self.device), workers=len(tallies),
            wall_s=wall, cpu_s=cpu, share=share, iterations=sum(t.iterations for t in tallies),
            gbps=sum(t.bytes for t in tallies) / wall / 1e9 if self.kind == "memory" else None,
        )
