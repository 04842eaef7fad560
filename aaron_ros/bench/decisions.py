"""What a decision costs, apart from everything else: each policy's decision time per grant on the
simulated clock, with the kernel bags' profiles as stage times, once with the CPU caches as the
decisions leave them and once with them evicted before each event (a frame arriving, a stage
ending), as a model stage evicts them live.

Live, a decision comes after a stage that streamed its weights and activations through the caches,
so the coordinator's objects are fetched from memory again: evicting about the last-level cache's
size reproduces the live decision times, and so shows what a change to a policy will cost there
without running models.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from aaron_ros.bench.workload import Workload, arrivals
from aaron_ros.contention.predictor import ContentionPredictor
from aaron_ros.coordinator.coordinator import Coordinator
from aaron_ros.coordinator.policies import make_policy
from aaron_ros.coordinator.sim import simulate
from aaron_ros.coordinator.types import Grant
from aaron_ros.coordinator.versions import VersionChooser, isolated_ms
from aaron_ros.kernels.bag import KernelBag
from aaron_ros.kernels.version import Version

EVICT_MB = 32.0  # above the last-level cache of the machines at hand (16-32 MB)
CORES = 2
ROUNDS = 3  # runs each way; their median is reported


@dataclass(frozen=True)
class DecisionCost:
    policy: str
    grants: int
    warm_us: float  # mean decision time per grant
    evicted_us: float  # the same with the caches evicted before each event


class _Evicting(Coordinator):
    """A coordinator that reads `junk` through before handling each event, outside the timed decision."""

    junk: np.ndarray | None = None

    def submit(self, *args, **kwargs):
        self._evict()
        return super().submit(*args, **kwargs)

    def release(self, *args, **kwargs):
        self._evict()
        return super().release(*args, **kwargs)

    def _evict(self) -> None:
        if self.junk is not None:
            self.junk.sum()


def _stage_s(grant: Grant, co: list[Version]) -> float:
    """The version's median alone, 30% slower beside anything: decisions, not times, are measured."""
    return isolated_ms(grant.version) / 1e3 * (1.3 if co else 1.0)


def decision_cost(workload: Workload, bags: dict[str, KernelBag], policy: str, versions: str = "adaptive",
                  duration_s: float = 20.0, evict_mb: float = EVICT_MB, rounds: int = ROUNDS) -> DecisionCost:
    """`policy`'s mean decision time per grant on `workload`: the median of `rounds` runs, warm and evicted."""
    arr = arrivals(workload, duration_s)
    stages = {t.name: len(bags[t.model].versions) for t in workload.tasks}

    def run(junk: np.ndarray | None) -> tuple[float, int]:
        pol = make_policy(policy)
        lanes = [f"lane{i}" for i in range(pol.lanes(CORES, len(workload.tasks)))]
        chooser = VersionChooser(bags, versions, ContentionPredictor(CORES))
        coord = _Evicting(workload.tasks, stages, lanes, pol, chooser, CORES)
        coord.junk = junk
        simulate(coord, arr, duration_s, _stage_s)
        return statistics.fmean(coord.grant_us), len(coord.grant_us)

    junk = np.ones(int(evict_mb * 1e6 / 8))
    warm = [run(None) for _ in range(rounds)]
    evicted = [run(junk) for _ in range(rounds)]
    return DecisionCost(policy, warm[0][1], statistics.median(u for u, _ in warm),
                        statistics.median(u for u, _ in evicted))
