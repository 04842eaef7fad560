"""The coordinator: bounded per-task queues, stage-level grants on a lane pool, accounting.

It is clock-free and single-threaded: a driver (real lanes or a simulated clock) tells it when
frames arrive and stages finish, and asks it for grants. One job per task is in flight at a time
(frames of a task are served in order, stage by stage); every other frame waits in the task's
bounded queue, where the task's overload rule decides what is dropped.
"""
from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aaron_ros.coordinator.policies import Pick, Policy, SchedulerView
from aaron_ros.coordinator.slack import Margin, Tail
from aaron_ros.coordinator.types import (
    Grant,
    Job,
    JobRecord,
    Outcome,
    Overload,
    StageRequest,
    StageTime,
    TaskSpec,
)
from aaron_ros.coordinator.versions import VersionChooser, isolated_ms
from aaron_ros.kernels.version import Version

# Why a frame was dropped (JobRecord.error).
TOO_LATE = "cannot meet its deadline"


@dataclass
class TaskState:
    spec: TaskSpec
    stages: int
    queue: deque = field(default_factory=deque)  # waiting jobs, oldest first
    current: Job | None = None  # the job in flight (started, maybe running a stage)
    last_release: float | None = None
    gaps: deque = field(default_factory=lambda: deque(maxlen=4))  # the latest times between releases (s)
    expected: tuple[float, ...] = ()  # next_releases() as of the last release: read at every decision

    def arrived(self, release: float) -> None:
        if self.last_release is not None:
            self.gaps.append(release - self.last_release)
        self.last_release = release
        self.expected = self.next_releases()

    def next_releases(self) -> tuple[float, ...]:
        """When the next frame may come, earliest first: the last release plus each kind of gap
        seen lately. Gaps within a third of a period of each other are one kind. With one kind
        (jitter around the task's rate, or too few frames yet) that is one period, the best guess.
        With more, a repeating pattern says which comes next: a 30 Hz camera rate-limited to 20 Hz
        alternates 33 and 67 ms gaps, so after a 33 comes a 67. Without one, every kind, each at
        its median."""
        if self.last_release is None:
            return ()
        kinds: list[list[float]] = []
        for gap in sorted(self.gaps):
            if kinds and gap - kinds[-1][0] <= self.spec.period_s / 3:
                kinds[-1].append(gap)
            else:
                kinds.append([gap])
        if len(kinds) < 2:
            return (self.last_release + self.spec.period_s,)
        kind = {gap: i for i, k in enumerate(kinds) for gap in k}
        seen = [kind[gap] for gap in self.gaps]
        # The kind that followed the last kind the latest time it came before.
        after = next((seen[i + 1] for i in range(len(seen) - 2, -1, -1) if seen[i] == seen[-1]), None)
        picked = kinds if after is None else [kinds[after]]
        return tuple(self.last_release + statistics.median(k) for k in picked)


class Coordinator:
    def __init__(self, tasks: Sequence[TaskSpec], stages: dict[str, int], lanes: Sequence[str],
                 policy: Policy, chooser: VersionChooser, cores: int,
                 on_record: Callable[[JobRecord, Job], None] | None = None, keep_records: bool = True):
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate task names: {names}")
        self.tasks = {t.name: TaskState(t, stages[t.name]) for t in tasks}
        self.lanes = list(lanes)
        self.free = set(self.lanes)
        self.running: dict[str, Grant] = {}  # lane -> grant
        self._grants: list[Grant] = []  # each running stage once (one may hold several lanes)
        self.policy, self.chooser, self.cores = policy, chooser, cores
        # A long-running node keeps no history here (on_record sees every record instead).
        self.keep_records = keep_records
        self.records: list[JobRecord] = []
        # Decision time (µs) per grant; the latest 10k in a long run.
        self.grant_us: list[float] | deque = [] if keep_records else deque(maxlen=10_000)
        self._on_record = on_record or (lambda r, job: None)
        # Per critical task: the margin its slack is sized with, learned from how its frames end.
        self.margins = {t.name: Margin() for t in tasks if t.critical}
        # Per thread count: how much longer than profiled a stage alone runs here (slack.Tail).
        self.tails: dict[int, Tail] = {}
        self.recheck_at: float | None = None
        # What every decision shows the policy, kept up to date as it changes rather than built
        # in each decision: a decision comes after a model stage has pushed the coordinator's
        # objects out of the CPU caches, so what it touches, not what it computes, is its cost.
        self._specs = {name: s.spec for name, s in self.tasks.items()}
        self._expected: dict[str, tuple[float, ...]] = {name: () for name in self.tasks}
        self._factors = {name: m.factor for name, m in self.margins.items()}
        self._tail_factors: dict[int, float] = {}

    def set_policy(self, policy: Policy, lanes: Sequence[str], chooser: VersionChooser | None = None) -> None:
        """Switch policy (the lanes it runs on, and the version setting) between two decisions.
        Nothing is dropped: queued frames stay queued, running stages finish where they are."""
        self.policy, self.lanes = policy, list(lanes)
        self.chooser = chooser or self.chooser
        self.free = {lane for lane in self.lanes if lane not in self.running}

    def update_task(self, spec: TaskSpec) -> None:
        """A task's rate, deadline or overload rule changed (same name): frames from now on get
        it; a frame already waiting or in flight keeps the deadline it came with."""
        self.tasks[spec.name].spec = self._specs[spec.name] = spec

    # -- arrivals -------------------------------------------------------------------------
    def submit(self, task: str, frame: int, release: float, data: Any = None, then: Any = None) -> None:
        """A frame arrives (with `then`, work for its last stage's lane: see Job). A full queue
        applies the task's overload rule (drops are recorded)."""
        state = self.tasks[task]
        spec = state.spec
        state.arrived(release)
        self._expected[task] = state.expected
        job = Job(spec, frame, release, state.stages, data, then=then)
        full = f"queue full ({spec.overload.value})"
        if spec.overload is Overload.KEEP_LATEST:
            while state.queue:
                self._record(state.queue.popleft(), Outcome.DROPPED, release, full)
            state.queue.append(job)
        elif len(state.queue) < spec.queue_size:
            state.queue.append(job)
        elif spec.overload is Overload.DROP_NEWEST:
            self._record(job, Outcome.DROPPED, release, full)
        else:  # drop_oldest
            self._record(state.queue.popleft(), Outcome.DROPPED, release, full)
            state.queue.append(job)

    def refuse(self, task: str, frame: int, release: float, reason: str) -> JobRecord:
        """A frame that will not be served (e.g. arriving while shutting down): counted as dropped."""
        state = self.tasks[task]
        return self._record(Job(state.spec, frame, release, state.stages), Outcome.DROPPED, release, reason)

    # -- grants -----------------------------------------------------------------------------
    def ready(self) -> list[StageRequest]:
        """The next stage of every task that can run now (one per task, never two at once)."""
        out = []
        for state in self.tasks.values():
            job = state.current
            if job is None and state.queue:
                job = state.queue[0]
            if job is not None and not job.running:
                out.append(StageRequest(job, job.next_stage))
        return out

    def schedule(self, now: float) -> list[Grant]:
        """Ask the policy to fill free lanes; returns the grants made (possibly none). After it,
        `recheck_at` is when the policy wants to decide again with no event in between, or None."""
        self.recheck_at = None
        if not self.free:
            return []
        if self.policy.sheds_late:
            self._shed_late(now)
        requests = self.ready()
        if not requests:
            return []
        t0 = time.perf_counter()
        view = SchedulerView(now=now, requests=requests, free_lanes=sorted(self.free),
                             lanes=self.lanes, running=self._grants, cores=self.cores,
                             chooser=self.chooser, tasks=self._specs, next_releases=self._expected,
                             margins=self._factors, tails=self._tail_factors,
                             waiting={n: len(s.queue) for n, s in self.tasks.items()})
        picks = self.policy.pick(view)
        self.recheck_at = view.recheck_at
        each_us = (time.perf_counter() - t0) * 1e6 / max(1, len(picks))
        grants = [self._grant(p, now, each_us) for p in picks]
        self.grant_us.extend(g.decision_us for g in grants)
        return grants

    def _grant(self, pick: Pick, now: float, decision_us: float) -> Grant:
        req = pick.request
        job, state = req.job, self.tasks[req.job.task.name]
        if pick.lane not in self.free or job.running or any(b not in self.free for b in pick.branch_lanes
                                                             if b != pick.lane):
            raise RuntimeError(f"policy {self.policy.name} granted a busy lane or a running job")
        if state.current is None:
            state.queue.popleft()
            state.current = job
            job.started = now
        job.running = True
        job.versions.append(pick.version.id)
        grant = Grant(req, pick.lane, pick.version, now, tuple(pick.branch_lanes), decision_us)
        self._grants.append(grant)
        for lane in {pick.lane, *pick.branch_lanes}:
            self.free.discard(lane)
            self.running[lane] = grant
        return grant

    def _shed_late(self, now: float) -> None:
        """Drop the frames that cannot meet their deadline even on their fastest versions with
        nothing beside them: waiting ones before they start, and started ones between two
        stages (the rest of their work would only delay the frames behind them)."""
        for state in self.tasks.values():
            job = state.current
            if job is not None and not job.running and now + self._fastest_s(job, job.next_stage) > job.deadline:
                self._finish(job, Outcome.DROPPED, now, TOO_LATE)
            for job in [j for j in state.queue if now + self._fastest_s(j, 0) > j.deadline]:
                state.queue.remove(job)
                self._record(job, Outcome.DROPPED, now, TOO_LATE)

    def _fastest_s(self, job: Job, stage: int) -> float:
        """The time of the job's stages from `stage` on, each on its fastest version alone (s)."""
        return self.chooser.remaining_ms(job.task.model, stage) / 1e3

    # -- releases ---------------------------------------------------------------------------
    def release(self, grant: Grant, now: float, seconds: float, output: Any = None,
                error: str | None = None, timing: StageTime | None = None) -> JobRecord | None:
        """A stage finished (or failed). Returns the job's record when the job ended."""
        for lane in {grant.lane, *grant.branch_lanes}:
            self.running.pop(lane, None)
            if lane in self.lanes:  # a lane the current policy no longer uses stays idle
                self.free.add(lane)
        self._grants = [g for g in self._grants if g is not grant]
        job = grant.request.job
        job.running = False
        if timing is not None:
            job.stage_times.append(timing)
        self.chooser.observe(grant.version, [g.version for g in self._grants], seconds * 1e3)
        if not self._grants and error is None:
            self._observe_tail(grant.version, seconds * 1e3)
        if error is not None:
            return self._finish(job, Outcome.FAILED, now, error)
        job.data = output
        job.next_stage += 1
        return self._finish(job, Outcome.DONE, now) if job.done else None

    def _observe_tail(self, v: Version, ms: float) -> None:
        """A stage ended with nothing else running: how far past its profiled tail it ran."""
        tail_ms = isolated_ms(v, tail=True)
        if 0 < tail_ms < math.inf:
            n = v.shape.threads
            tail = self.tails.setdefault(n, Tail())
            tail.observe(ms / tail_ms)
            self._tail_factors[n] = tail.factor

    def _finish(self, job: Job, outcome: Outcome, now: float, error: str | None = None) -> JobRecord:
        self.tasks[job.task.name].current = None
        return self._record(job, outcome, now, error)

    def _record(self, job: Job, outcome: Outcome, now: float, error: str | None = None) -> JobRecord:
        rec = JobRecord(job.task.name, job.frame, job.release, outcome,
                        finished=now if outcome == Outcome.DONE else None, started=job.started, error=error,
                        versions=tuple(job.versions), stage_times=tuple(job.stage_times))
        if self.keep_records:
            self.records.append(rec)
        margin = self.margins.get(job.task.name)
        if margin is not None:
            if outcome == Outcome.DONE:
                margin.observe(rec.latency_s / (job.task.deadline_ms / 1e3))
            elif error == TOO_LATE:
                margin.observe(None)
            self._factors[job.task.name] = margin.factor
        self._on_record(rec, job)
        return rec

    def pending(self) -> dict[str, int]:
        """Frames waiting or in flight, per task with any."""
        left = {name: len(s.queue) + (s.current is not None) for name, s in self.tasks.items()}
        return {name: n for name, n in left.items() if n}

    def drop_waiting(self, now: float) -> None:
        """Frames not started yet are counted as dropped; jobs in flight go on."""
        for state in self.tasks.values():
            while state.queue:
                self._record(state.queue.popleft(), Outcome.DROPPED, now)

    def drain(self, now: float) -> None:
        """End of a run: frames still waiting or in flight are counted as dropped."""
        self.drop_waiting(now)
        for state in self.tasks.values():
            if state.current is not None:
                self._finish(state.current, Outcome.DROPPED, now)

    def running_grants(self) -> list[Grant]:
        """Each running stage once (a stage with branch lanes holds several lanes)."""
        return list(self._grants)
