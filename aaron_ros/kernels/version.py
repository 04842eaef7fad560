"""What a kernel bag holds: versions of stages, each a compiled form plus the resource shape it
runs with, and what was measured of it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

BRANCH_MODES = ("sequential", "parallel")


@dataclass(frozen=True)
class ResourceShape:
    """The resources a version runs with.

    threads: CPU intra-op threads. branches: for a branch group, run the branches one after
    another on one lane, or side by side on `threads` lanes of one thread each (the IOS choice).
    priority / sms: CUDA stream priority and SM budget (green context); None where unused.
    """

    threads: int = 1
    branches: str = "sequential"
    priority: int = 0
    sms: int | None = None

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.branches not in BRANCH_MODES:
            raise ValueError(f"branches must be one of {BRANCH_MODES}, got {self.branches!r}")

    @property
    def key(self) -> str:
        parts = [f"t{self.threads}"]
        if self.branches == "parallel":
            parts.append("par")
        if self.priority:
            parts.append(f"p{self.priority}")
        if self.sms is not None:
            parts.append(f"sm{self.sms}")
        return "-".join(parts)

    @classmethod
    def from_dict(cls, d: dict) -> ResourceShape:
        return cls(**d)


@dataclass(frozen=True)
class Artifact:
    """One file of a version, relative to the bag folder, with its checksum."""

    path: str
    sha256: str


@dataclass
class LevelProfile:
    """Latency of a version under one contention condition."""

    p50_ms: float
    p95_ms: float
    n: int


@dataclass
class Version:
    """One compiled form of one stage with its resource shape, and what was measured of it.

    A version enters a bag only after its output matched the eager reference (`max_rel_err`).
    `sensitivity[kind]`: its slowdown under heavy contention of that kind (1.0 = unaffected).
    `pressure[kind]`: the slowdown it inflicts on a probe of that kind running beside it.
    """

    id: str
    stage: int
    backend: str
    shape: ResourceShape
    source: str = ""  # hash of what it was built from (stage weights, input, backend, torch)
    artifacts: list[Artifact] = field(default_factory=list)
    max_rel_err: float = 0.0
    build_s: float = 0.0
    profiles: dict[str, LevelProfile] = field(default_factory=dict)
    sensitivity: dict[str, float] = field(default_factory=dict)
    pressure: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Version:
        d = dict(d)
        d["shape"] = ResourceShape.from_dict(d["shape"])
        d["artifacts"] = [Artifact(**a) for a in d.get("artifacts", [])]
        d["profiles"] = {k: LevelProfile(**v) for k, v in d.get("profiles", {}).items()}
        return cls(**d)


def version_id(stage: int, backend: str, shape: ResourceShape) -> str:
    return f"s{stage:02d}.{backend}.{shape.key}"
