"""The coordinator driven for real: frames arrive on a wall clock, granted stages run on lanes,
and everything (arrivals, finished stages, policy switches) reaches the single coordinating
thread through one event queue, so the coordinator itself needs no locks."""
from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch

from aaron_ros.common.cpu import name_os_thread
from aaron_ros.coordinator.coordinator import Coordinator
from aaron_ros.coordinator.policies import Policy
from aaron_ros.coordinator.types import Grant, JobRecord, StageTime
from aaron_ros.coordinator.versions import VersionChooser
from aaron_ros.kernels.bag import KernelBag
from aaron_ros.runtime.executor import submit_stage
from aaron_ros.runtime.lanes import LanePool

DRAIN_TIMEOUT_S = 30.0
HOLD_RECHECK_S = 0.002  # for a policy that holds frames back without saying until when
COORDINATING_THREAD = "aaron-coord"  # its thread's name, also the kernel's (at most 15 bytes)
TRACE_FRAMES = 8  # of a failed stage's traceback, the innermost: where the model or its post-processing raised


def describe_failure(exc: BaseException) -> str:
    """A failed frame's error (JobRecord.error): `Type: message` on the first line, then where it
    was raised, so that a front end can log the first of a kind in full and the rest by line."""
    where = "".join(traceback.format_tb(exc.__traceback__, limit=-TRACE_FRAMES))
    return f"{type(exc).__name__}: {exc}\n{where}".rstrip()


# What reaches the coordinating thread through the event queue.
@dataclass(frozen=True)
class Arrival:
    task: str
    frame: int
    release: float
    data: Any
    then: Any = None


@dataclass(frozen=True)
class StageEnded:
    grant: Grant
    future: Future | None  # None when the stage could not even be submitted
    error: str | None = None


@dataclass(frozen=True)
class PolicySwitch:
    policy: Policy
    lanes: Sequence[str]
    chooser: VersionChooser | None


@dataclass(frozen=True)
class Call:
    fn: Callable[[Coordinator], Any]
    reply: queue.Queue


@dataclass(frozen=True)
class Wake:
    """Nothing to do but look at the stop flag."""


Event = Arrival | StageEnded | PolicySwitch | Call | Wake


class LiveDriver:
    """Runs `coord` on `pool`. `submit` and `switch_policy` may be called from any thread;
    `run` (or the thread `start` makes) is the only one that touches the coordinator."""

    def __init__(self, coord: Coordinator, pool: LanePool, bags: dict[str, KernelBag],
                 on_stage: Callable[[Grant, float, StageTime | None], None] | None = None):
        self.coord, self.pool, self.bags = coord, pool, bags
        self._on_stage = on_stage  # tracing: (grant, seen ended at, its times), on the coordinating thread
        self._events: queue.SimpleQueue = queue.SimpleQueue()  # C, no Condition: a put or get costs ~1 us
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._drain_s = DRAIN_TIMEOUT_S
        self._thread: threading.Thread | None = None

    def now(self) -> float:
        """Seconds on the coordinator's clock (release times are on it)."""
        return time.perf_counter() - self._t0

    # -- any thread ---------------------------------------------------------------------------
    def submit(self, task: str, frame: int, data: Any, release: float | None = None, then: Any = None) -> None:
        release = self.now() if release is None else release
        self._events.put(Arrival(task, frame, release, data, then))

    def switch_policy(self, policy: Policy, lanes: Sequence[str], chooser: VersionChooser | None = None) -> None:
        self._events.put(PolicySwitch(policy, lanes, chooser))

    def call(self, fn: Callable[[Coordinator], Any], timeout: float = 5.0) -> Any:
        """Run `fn(coordinator)` on the coordinating thread and return its result."""
        if self._thread is None or not self._thread.is_alive():
            return fn(self.coord)
        done: queue.Queue = queue.Queue(maxsize=1)
        self._events.put(Call(fn, done))
        ok, value = done.get(timeout=timeout)
        if not ok:
            raise value
        return value

    def start(self) -> None:
        def serve() -> None:
            name_os_thread(COORDINATING_THREAD)
            self.run()

        self._thread = threading.Thread(target=serve, name=COORDINATING_THREAD, daemon=True)
        self._thread.start()

    def stop(self, drain_timeout_s: float = 2.0) -> None:
        """Stop taking frames; in-flight stages get `drain_timeout_s` to finish, the rest drop."""
        self._drain_s = drain_timeout_s
        self._stop.set()
        self._events.put(Wake())
        if self._thread is not None:
            self._thread.join(drain_timeout_s + 5.0)

    # -- the coordinating thread ------------------------------------------------------------
    def run(self, arrivals: Sequence[tuple[float, str]] = (), duration_s: float | None = None,
            make_input: Callable[[str], torch.Tensor] | None = None) -> list[JobRecord]:
        """Serve until `stop()` (or, with `duration_s`, until then), replaying `arrivals`
        (seconds from now, task) in real time; then finish what was released (bounded) and
        count the rest as dropped."""
        coord = self.coord
        frames = {name: itertools.count() for name in coord.tasks}
        start = self.now()
        pending = [(start + t, task) for t, task in arrivals if duration_s is None or t < duration_s]
        nxt = 0
        end_arrivals = None if duration_s is None else start + duration_s
        drain_until = None
        while True:
            t = self.now()
            while nxt < len(pending) and pending[nxt][0] <= t:
                task = pending[nxt][1]
                coord.submit(task, next(frames[task]), pending[nxt][0], make_input(task))
                nxt += 1
            if drain_until is None and self._stop.is_set():
                # Stopping: frames in flight finish (within the drain time), waiting ones drop.
                coord.drop_waiting(t)
                drain_until = t + self._drain_s
            elif drain_until is None and end_arrivals is not None and t >= end_arrivals:
                # The replay is over; what was released is still served, so the end of a run
                # does not count as misses.
                drain_until = t + DRAIN_TIMEOUT_S
            for grant in coord.schedule(self.now()):
                self._launch(grant)
            if drain_until is not None and (not coord.running or t >= drain_until):
                break
            wake = [pending[nxt][0]] if nxt < len(pending) else []
            wake += [end_arrivals] if end_arrivals is not None and drain_until is None else []
            wake += [drain_until] if drain_until is not None else []
            if coord.recheck_at is not None:  # the policy holds frames back until then
                wake.append(coord.recheck_at)
            elif coord.pending() and not coord.running:
                # Frames wait but the policy started nothing and said nothing: decide again soon.
                wake.append(self.now() + HOLD_RECHECK_S)
            timeout = max(0.0, min(wake) - self.now()) if wake else None
            try:
                self._handle(self._events.get(timeout=timeout))
            except queue.Empty:
                continue
            while True:  # everything else already there, before the next decision
                try:
                    self._handle(self._events.get_nowait())
                except queue.Empty:
                    break
        coord.drain(self.now())
        return coord.records

    def _launch(self, grant: Grant) -> None:
        job = grant.request.job
        runner = self.bags[job.task.model].runner(grant.version)
        branch = [self.pool[name] for name in (grant.lane, *grant.branch_lanes)] if grant.branch_lanes else None
        last = grant.request.stage == job.stages - 1
        try:
            fut = submit_stage(runner, job.data, self.pool[grant.lane], branch, job.then if last else None)
        except Exception as exc:
            self._events.put(StageEnded(grant, None, describe_failure(exc)))
            return
        fut.add_done_callback(lambda f, g=grant: self._events.put(StageEnded(g, f)))

    def _handle(self, event: Event) -> None:
        coord = self.coord
        match event:
            case StageEnded(grant, fut, error):
                run = None
                if error is None:
                    try:
                        run = fut.result()
                    except Exception as exc:  # the model raised: this job fails, the others go on
                        error = describe_failure(exc)
                now = self.now()
                timing = None if error is not None else StageTime(
                    grant.request.stage, grant.granted_at, run.started - self._t0, run.finished - self._t0, now,
                    run.cpu_s, run.pre_s, run.post_s, grant.decision_us)
                if self._on_stage is not None:
                    self._on_stage(grant, now, timing)
                if error is None:
                    coord.release(grant, now, run.finished - run.started, run.output, timing=timing)
                else:
                    coord.release(grant, now, 0.0, error=error)
            case Arrival(task, frame, release, data, then):
                if self._stop.is_set():
                    coord.refuse(task, frame, release, "shutting down")  # counted, not lost silently
                else:
                    coord.submit(task, frame, release, data, then)
            case PolicySwitch(policy, lanes, chooser):
                coord.set_policy(policy, lanes, chooser)
            case Call(fn, reply):
                try:
                    reply.put((True, fn(coord)))
                except Exception as exc:
                    reply.put((False, exc))
            case Wake():
                pass


def run_live(coord: Coordinator, pool: LanePool, bags: dict[str, KernelBag],
             arrivals: Sequence[tuple[float, str]], duration_s: float,
             make_input: Callable[[str], torch.Tensor]) -> list[JobRecord]:
    """Replay `arrivals` (seconds from start, task) in real time for `duration_s`, then serve
    what was released (at most DRAIN_TIMEOUT_S more); anything left after that is dropped."""
    return LiveDriver(coord, pool, bags).run(arrivals, duration_s, make_input)
