"""The things that travel between tasks, the coordinator, its policy and the lanes."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aaron_ros.kernels.version import Version


# String enums: they compare equal to their values, so parameter files, JSON reports and messages
# carry the plain words while the code gets a closed set of names.
class Criticality(StrEnum):
    CRITICAL = "critical"
    NORMAL = "normal"


class Overload(StrEnum):
    """What a full queue does with one more frame."""

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    KEEP_LATEST = "keep_latest"  # a queue of one: only the newest frame waits


class Outcome(StrEnum):
    """How a frame ended in the coordinator (late is a done frame past its deadline)."""

    DONE = "done"
    DROPPED = "dropped"
    FAILED = "failed"


def one_of(enum: type[StrEnum], value: str, what: str) -> StrEnum:
    """`value` as a member of `enum`, or a ValueError naming `what` and every allowed value."""
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"{what} must be one of {', '.join(enum)}, got {value!r}") from None


@dataclass(frozen=True)
class TaskSpec:
    """One perception task: a model fed at a rate, with a relative deadline and a criticality.

    overload: what to do with a frame that arrives while `queue_size` frames already wait:
    drop the oldest waiting frame, drop the new one, or keep only the latest (queue of one).
    """

    name: str
    model: str
    rate_hz: float
    deadline_ms: float
    criticality: Criticality = Criticality.NORMAL
    overload: Overload = Overload.DROP_OLDEST
    queue_size: int = 2

    def __post_init__(self) -> None:
        where = f"task '{self.name}'"
        if self.rate_hz <= 0:
            raise ValueError(f"{where}: rate_hz must be > 0, got {self.rate_hz}")
        if self.deadline_ms <= 0:
            raise ValueError(f"{where}: deadline_ms must be > 0, got {self.deadline_ms}")
        # Frozen: the checked members are set through object.__setattr__.
        object.__setattr__(self, "criticality", one_of(Criticality, self.criticality, f"{where}: criticality"))
        object.__setattr__(self, "overload", one_of(Overload, self.overload, f"{where}: overload"))
        if self.queue_size < 1:
            raise ValueError(f"{where}: queue_size must be >= 1, got {self.queue_size}")

    @property
    def critical(self) -> bool:
        return self.criticality is Criticality.CRITICAL

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz


@dataclass(frozen=True)
class StageTime:
    """One stage of a frame, on the coordinator's clock (s): granted, run on its lane, and seen
    ended by the coordinator; cpu_s is the lane thread's CPU time on it. pre_s and post_s:
    the part of its lane run that prepared the frame's input and finished its output."""

    stage: int
    granted: float
    started: float
    finished: float
    seen: float
    cpu_s: float = 0.0
    pre_s: float = 0.0
    post_s: float = 0.0
    decision_us: float = 0.0  # the coordinator's decision time for its grant (Grant.decision_us)
    queued: float | None = None  # put on its lane's queue, after the decision (None: not known)


@dataclass
class Job:
    """One frame of one task, run stage by stage."""

    task: TaskSpec
    frame: int
    release: float  # arrival time (s, on the coordinator's clock)
    stages: int
    data: Any = None  # the tensor flowing through the stages (None on a simulated clock)
    then: Any = None  # run on the last stage's lane right after it, inside its grant (post-processing)
    next_stage: int = 0
    running: bool = False
    started: float | None = None  # when its first stage was granted
    versions: list[str] = field(default_factory=list)
    stage_times: list[StageTime] = field(default_factory=list)  # filled by a driver that times stages

    @property
    def deadline(self) -> float:
        return self.release + self.task.deadline_ms / 1e3

    @property
    def critical(self) -> bool:
        return self.task.critical

    @property
    def done(self) -> bool:
        return self.next_stage >= self.stages


@dataclass(frozen=True)
class StageRequest:
    """A job's next stage, ready to run."""

    job: Job
    stage: int


@dataclass(frozen=True)
class Grant:
    """The coordinator's answer to a request: where, with which version, since when."""

    request: StageRequest
    lane: str
    version: Version
    granted_at: float
    branch_lanes: tuple[str, ...] = ()
    decision_us: float = 0.0  # the time of the decision that made it, shared among its grants


@dataclass
class JobRecord:
    """How one frame ended."""

    task: str
    frame: int
    release: float
    outcome: Outcome
    finished: float | None = None
    started: float | None = None
    error: str | None = None
    versions: tuple[str, ...] = ()  # the version id each stage ran with
    stage_times: tuple[StageTime, ...] = ()

    def __post_init__(self) -> None:
        self.outcome = one_of(Outcome, self.outcome, f"frame {self.frame} of {self.task}: outcome")

    @property
    def latency_s(self) -> float | None:
        return None if self.finished is None else self.finished - self.release

    @property
    def queueing_s(self) -> float | None:
        return None if self.started is None else self.started - self.release
