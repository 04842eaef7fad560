"""Which version of a stage to run: the independent `versions` setting.

eager: the original model (the best eager form alone); solo: the version best in isolation (what
a single-tenant compiler would pick); adaptive: the version with the lowest latency predicted
for the stages running beside it right now.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from aaron_ros.contention.predictor import ContentionPredictor
from aaron_ros.kernels.background.levels import ISOLATION
from aaron_ros.kernels.bag import KernelBag
from aaron_ros.kernels.version import Version

SETTINGS = ("eager", "solo", "adaptive")


def check_versions(setting: str) -> str:
    """`setting` if it is a versions setting, else a ValueError listing the known ones."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown versions setting {setting!r}; known: {', '.join(SETTINGS)}")
    return setting


def isolated_ms(v: Version, tail: bool = False) -> float:
    """The version's median time alone, or with `tail` its 95th percentile."""
    p = v.profiles.get(ISOLATION)
    return (p.p95_ms if tail else p.p50_ms) if p else float("inf")


class VersionChooser:
    def __init__(self, bags: dict[str, KernelBag], setting: str, predictor: ContentionPredictor | None = None):
        self.bags, self.setting = bags, check_versions(setting)
        self.predictor = predictor or ContentionPredictor()
        self._contenders: dict[tuple[str, int], list[Version]] = {}
        self._candidates: dict[tuple, list[Version]] = {}  # the bags never change: asked in every decision
        self._remaining: dict[tuple[str, int | None, bool], list[float]] = {}

    def candidates(self, model: str, stage: int, max_threads: int | None = None,
                   max_lanes: int | None = None) -> list[Version]:
        """The stage's versions, optionally limited to a thread budget and a lane count."""
        key = (model, stage, max_threads, max_lanes)
        got = self._candidates.get(key)
        if got is None:
            got = self._candidates[key] = self._fitting(model, stage, max_threads, max_lanes)
        return got

    def _fitting(self, model: str, stage: int, max_threads: int | None, max_lanes: int | None) -> list[Version]:
        vs = self.bags[model].versions[stage]
        if self.setting == "eager":
            vs = [v for v in vs if v.backend == "eager"]
        elif self.setting == "adaptive":
            vs = self._contenders_of(model, stage, vs)
        lanes = max(1, max_lanes or 1)  # one lane is always there; parallel versions need more
        fits = [v for v in vs if (max_threads is None or v.shape.threads <= max_threads)
                and lanes_of(v) <= lanes]
        return fits or [min(vs, key=lambda v: v.shape.threads)]

    def _contenders_of(self, model: str, stage: int, vs: list[Version]) -> list[Version]:
        """The versions best (or within 5% of best) under at least one profiled condition, and
        the fastest of each resource shape: a version that never came close anywhere is not worth
        a prediction in every decision (this halves the decision time on the reference bags)."""
        key = (model, stage)
        if key not in self._contenders:
            shapes = {(v.shape.threads, v.shape.branches) for v in vs}
            keep = {id(min((v for v in vs if (v.shape.threads, v.shape.branches) == sh), key=isolated_ms))
                    for sh in shapes}
            for cond in {c for v in vs for c in v.profiles}:
                timed = [(v.profiles[cond].p50_ms, v) for v in vs if cond in v.profiles]
                best = min(ms for ms, _ in timed)
                keep |= {id(v) for ms, v in timed if ms <= best * 1.05}
            self._contenders[key] = [v for v in vs if id(v) in keep]
        return self._contenders[key]

    def choose(self, model: str, stage: int, co_runners: Sequence[Version], max_threads: int | None = None,
               max_lanes: int | None = None) -> Version:
        vs = self.candidates(model, stage, max_threads, max_lanes)
        if self.setting == "adaptive":
            return self.predictor.fastest(vs, co_runners)
        return min(vs, key=isolated_ms)

    def remaining_ms(self, model: str, stage: int, max_threads: int | None = None, tail: bool = False) -> float:
        """The time of a model's stages from `stage` on, each on its fastest version alone within
        `max_threads` (ms; with `tail`, their 95th percentiles). A stage never profiled counts as
        0, so an unknown time never drops a frame nor holds one back."""
        key = (model, max_threads, tail)
        if key not in self._remaining:
            stages = sorted(self.bags[model].versions) if model in self.bags else []
            # A thread budget bounds the lanes too: parallel branches take a lane per thread.
            lanes = max_threads or math.inf
            ms = [min(isolated_ms(v, tail) for v in self.candidates(model, i, max_threads, lanes)) for i in stages]
            ms = [t if math.isfinite(t) else 0.0 for t in ms]
            self._remaining[key] = [sum(ms[i:]) for i in range(len(ms))]
        table = self._remaining[key]
        return table[stage] if stage < len(table) else 0.0

    def predict_ms(self, v: Version, co_runners: Sequence[Version]) -> float:
        return self.predictor.predict(v, co_runners)

    def observe(self, v: Version, co_runners: Sequence[Version], measured_ms: float) -> None:
        self.predictor.observe(v, co_runners, measured_ms)


def lanes_of(v: Version) -> int:
    """Lanes a version occupies: parallel branches take one lane per thread of its shape."""
    return v.shape.threads if v.shape.branches == "parallel" else 1
