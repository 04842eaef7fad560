"""The coordinator driven for real: frames arrive on a wall clock, granted stages run on lanes.

Every event (a frame arriving, a stage ending, a policy switch, a call) is handled by the thread
it happens on, under one lock, together with the decisions that follow: the coordinator sees one
thread at a time and needs no locks of its own, and a lane that finishes a stage grants the next
one itself, without waking a thread in between (shorter hand-offs, and 5% less CPU outside the
model stages in an A/B on a 2-core machine). The clock thread (`start`'s, or `run`'s caller)
handles only what time brings: replayed arrivals, a policy's recheck, the end of a drain."""
from __future__ import annotations

import itertools
import math
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
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
CLOCK_THREAD = "aaron-clock"  # the clock thread's name, also the kernel's (at most 15 bytes)
TRACE_FRAMES = 8  # of a failed stage's traceback, the innermost: where the model or its post-processing raised


def describe_failure(exc: BaseException) -> str:
    """A failed frame's error (JobRecord.error): `Type: message` on the first line, then where it
    was raised, so that a front end can log the first of a kind in full and the rest by line."""
    where = "".join(traceback.format_tb(exc.__traceback__, limit=-TRACE_FRAMES))
    return f"{type(exc).__name__}: {exc}\n{where}".rstrip()


# What happens to the coordinator, from any thread.
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
    queued: float | None = None  # when it was put on its lane's queue (the coordinator's clock)


Event = Arrival | StageEnded


class LiveDriver:
    """Runs `coord` on `pool`. `submit`, `switch_policy` and `call` may be called from any thread;
    the coordinator is touched only under the driver's lock."""

    def __init__(self, coord: Coordinator, pool: LanePool, bags: dict[str, KernelBag],
                 on_stage: Callable[[Grant, float, StageTime | None], None] | None = None):
        self.coord, self.pool, self.bags = coord, pool, bags
        self._on_stage = on_stage  # tracing: (grant, seen ended at, its times), under the lock
        self._t0 = time.perf_counter()
        self._lock = threading.RLock()
        self._clock = threading.Condition(self._lock)  # the clock thread sleeps on it
        self._sleep_until = -math.inf  # when the sleeping clock thread looks again (-inf: it is awake)
        self._inbox: deque[Event] = deque()
        self._handling: int | None = None  # the thread handling events now
        self.cpu_s = 0.0  # thread CPU spent handling events and deciding, on every thread together
        self._stop = threading.Event()
        self._draining = False
        self._drain_s = DRAIN_TIMEOUT_S
        self._thread: threading.Thread | None = None

    def now(self) -> float:
        """Seconds on the coordinator's clock (release times are on it)."""
        return time.perf_counter() - self._t0

    # -- any thread ---------------------------------------------------------------------------
    def submit(self, task: str, frame: int, data: Any, release: float | None = None, then: Any = None) -> None:
        release = self.now() if release is None else release
        self._post(Arrival(task, frame, release, data, then))

    def switch_policy(self, policy: Policy, lanes: Sequence[str], chooser: VersionChooser | None = None) -> None:
        self.call(lambda c: c.set_policy(policy, lanes, chooser))

    def call(self, fn: Callable[[Coordinator], Any]) -> Any:
        """Run `fn(coordinator)` under the lock and return its result; the decisions it leads to follow."""
        return self._handle_all(lambda: fn(self.coord))

    def start(self) -> None:
        def serve() -> None:
            name_os_thread(CLOCK_THREAD)
            self.run()

        self._thread = threading.Thread(target=serve, name=CLOCK_THREAD, daemon=True)
        self._thread.start()

    def stop(self, drain_timeout_s: float = 2.0) -> None:
        """Stop taking frames; in-flight stages get `drain_timeout_s` to finish, the rest drop."""
        self._drain_s = drain_timeout_s
        self._stop.set()
        with self._lock:
            self._clock.notify()
        if self._thread is not None:
            self._thread.join(drain_timeout_s + 5.0)

    # -- under the lock -------------------------------------------------------------------------
    def _post(self, event: Event) -> None:
        self._inbox.append(event)
        self._handle_all()

    def _handle_all(self, first: Callable[[], Any] | None = None) -> Any:
        """Run `first`, handle every event in the inbox and decide, until nothing is left. A stage
        that ends inside this (its future done before its callback was added) is only queued:
        the loop here takes it, so a decision is never entered twice."""
        me = threading.get_ident()
        with self._lock:
            if self._handling == me:
                return first() if first else None
            self._handling, cpu = me, time.thread_time()
            try:
                value = first() if first else None
                while True:
                    while self._inbox:
                        self._handle(self._inbox.popleft())
                    self._decide()
                    if not self._inbox:
                        return value
            finally:
                self._handling = None
                self.cpu_s += time.thread_time() - cpu

    def _decide(self) -> None:
        coord = self.coord
        for grant in coord.schedule(self.now()):
            self._launch(grant)
        if self._wake_at() < self._sleep_until:
            self._clock.notify()

    def _wake_at(self) -> float:
        """When the clock thread must look next for the coordinator's sake (inf: not before an event)."""
        coord = self.coord
        if self._draining and not coord.running:
            return -math.inf
        if coord.recheck_at is not None:  # the policy holds frames back until then
            return coord.recheck_at
        if not coord.running and coord.pending():
            # Frames wait but the policy started nothing and said nothing: decide again soon.
            return self.now() + HOLD_RECHECK_S
        return math.inf

    def _launch(self, grant: Grant) -> None:
        job = grant.request.job
        runner = self.bags[job.task.model].runner(grant.version)
        branch = [self.pool[name] for name in (grant.lane, *grant.branch_lanes)] if grant.branch_lanes else None
        last = grant.request.stage == job.stages - 1
        try:
            fut = submit_stage(runner, job.data, self.pool[grant.lane], branch, job.then if last else None)
        except Exception as exc:
            self._inbox.append(StageEnded(grant, None, describe_failure(exc)))
            return
        queued = self.now()
        # On the lane's thread as the stage ends: that thread handles it and starts what follows.
        fut.add_done_callback(lambda f, g=grant: self._post(StageEnded(g, f, queued=queued)))

    def _handle(self, event: Event) -> None:
        coord = self.coord
        match event:
            case StageEnded(grant, fut, error, queued):
                run = None
                if error is None:
                    try:
                        run = fut.result()
                    except Exception as exc:  # the model raised: this job fails, the others go on
                        error = describe_failure(exc)
                now = self.now()
                timing = None if error is not None else StageTime(
                    grant.request.stage, grant.granted_at, run.started - self._t0, run.finished - self._t0, now,
                    run.cpu_s, run.pre_s, run.post_s, grant.decision_us, queued)
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

    # -- the clock thread ---------------------------------------------------------------------
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
        with self._lock:
            while True:
                t = self.now()
                while nxt < len(pending) and pending[nxt][0] <= t:
                    task = pending[nxt][1]
                    self._inbox.append(Arrival(task, next(frames[task]), pending[nxt][0], make_input(task)))
                    nxt += 1
                first = None
                if drain_until is None and self._stop.is_set():
                    # Stopping: frames in flight finish (within the drain time), waiting ones drop.
                    first = partial(coord.drop_waiting, t)
                    drain_until = t + self._drain_s
                elif drain_until is None and end_arrivals is not None and t >= end_arrivals:
                    # The replay is over; what was released is still served, so the end of a run
                    # does not count as misses.
                    drain_until = t + DRAIN_TIMEOUT_S
                self._draining = drain_until is not None
                self._handle_all(first)
                if drain_until is not None and (not coord.running or t >= drain_until):
                    break
                wake = [self._wake_at()]
                wake += [pending[nxt][0]] if nxt < len(pending) else []
                wake += [end_arrivals] if end_arrivals is not None and drain_until is None else []
                wake += [drain_until] if drain_until is not None else []
                self._sleep_until = min(wake)
                left = self._sleep_until - self.now()
                if left > 0:  # stop() and the other threads notify, under the lock this wait lets go
                    self._clock.wait(None if math.isinf(left) else left)
                self._sleep_until = -math.inf
            coord.drain(self.now())
        return coord.records

