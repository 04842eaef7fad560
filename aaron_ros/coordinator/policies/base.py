"""The policy interface: given what is ready and what is free, pick (request, lane, version)s."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aaron_ros.coordinator.types import Grant, StageRequest, TaskSpec
from aaron_ros.coordinator.versions import VersionChooser, lanes_of
from aaron_ros.kernels.version import Version


@dataclass
class SchedulerView:
    """What a policy may look at when it decides; it changes nothing but `recheck_at`."""

    now: float
    requests: list[StageRequest]  # one ready stage per task at most
    free_lanes: list[str]
    lanes: list[str]
    running: list[Grant]
    cores: int
    chooser: VersionChooser
    tasks: dict[str, TaskSpec]
    next_releases: dict[str, tuple[float, ...]] = field(default_factory=dict)  # when each task's next frame may come
    margins: dict[str, float] = field(default_factory=dict)  # per critical task (coordinator.slack)
    tails: dict[int, float] = field(default_factory=dict)  # live over profiled tail, per thread count
    waiting: dict[str, int] = field(default_factory=dict)  # frames in each task's queue
    recheck_at: float | None = None  # set through hold_until

    def hold_until(self, t: float) -> None:
        """Ready work is held back until `t` at the latest: decide again then, even if no frame
        arrives and no stage ends before."""
        self.recheck_at = t if self.recheck_at is None else min(self.recheck_at, t)

    def co_runners(self, extra: Sequence[Version] = ()) -> list[Version]:
        return [g.version for g in self.running] + list(extra)

    def busy_threads(self, extra: Sequence[Version] = ()) -> int:
        return sum(v.shape.threads for v in self.co_runners(extra))

    def choose(self, req: StageRequest, co: Sequence[Version], max_threads: int | None = None,
               max_lanes: int | None = None) -> Version:
        return self.chooser.choose(req.job.task.model, req.stage, co, max_threads, max_lanes)


@dataclass(frozen=True)
class Pick:
    request: StageRequest
    lane: str
    version: Version
    branch_lanes: tuple[str, ...] = ()


class Policy(Protocol):
    name: str
    # True: a frame that can no longer meet its deadline, even on the fastest versions alone, is
    # dropped before it starts (so before its input is prepared) or before its next stage.
    sheds_late: bool

    def lanes(self, pool: int, tasks: int) -> int:
        """How many lanes this policy runs on, given the pool size and the number of tasks."""

    def pick(self, view: SchedulerView) -> list[Pick]:
        """Grants for some of `view.requests` on some of `view.free_lanes`."""


def greedy(view: SchedulerView, ordered: Sequence[StageRequest], max_threads_for=None) -> list[Pick]:
    """Fill free lanes with `ordered` requests, first first, each with its chosen version.

    A version that wants parallel branches gets extra free lanes when there are enough."""
    free = list(view.free_lanes)
    picks: list[Pick] = []
    chosen: list[Version] = []
    for req in ordered:
        if not free:
            break
        budget = max_threads_for(req, chosen) if max_threads_for else None
        v = view.choose(req, view.co_runners(chosen), budget, max_lanes=len(free))
        lanes = free[:lanes_of(v)]
        del free[:lanes_of(v)]
        picks.append(Pick(req, lanes[0], v, tuple(lanes[1:])))
        chosen.append(v)
    return picks


def deadline_monotonic_key(req: StageRequest):
    """Shorter relative deadline first; critical before normal on a tie; then oldest frame."""
    t = req.job.task
    return (t.deadline_ms, not t.critical, req.job.release)
