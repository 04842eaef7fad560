"""The policy benchmark: every policy (and versions setting) on the same frame arrivals, in one
process, interleaved in order and repeated; each task also measured alone in the same run.

Each run is a `CoordinatorService` replaying the arrivals on a lane pool sized for its policy;
the models and kernel bags are built once and shared, and each policy entry keeps its own
contention predictor across its rounds. Rounds, isolation and the report: `bench/driver.py`.
"""
from __future__ import annotations

import logging
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from aaron_ros.bench.bound import stage_costs
from aaron_ros.bench.driver import (
    ISOLATION_POLICY,
    ISOLATION_VERSIONS,
    BenchTarget,
    RunResult,
    bag_sources,
    bench_entries,
    drive,
)
from aaron_ros.bench.policy_report import write_policy_report
from aaron_ros.bench.workload import Workload, arrivals
from aaron_ros.contention.predictor import ContentionPredictor
from aaron_ros.coordinator.service import CoordinatorService, ModelSet, ServiceOptions
from aaron_ros.coordinator.types import Outcome, TaskSpec
from aaron_ros.coordinator.versions import VersionChooser
from aaron_ros.runtime.lanes import resolve_kind

log = logging.getLogger(__name__)


@dataclass
class BenchOptions:
    policies: list[str]
    versions: list[str] | None = None  # None: each policy's own default
    duration_s: float = 20.0  # per policy entry, summed over the repeats
    repeats: int = 2
    isolation_s: float = 4.0  # per task
    kernel_bag_dir: Path | None = None  # <dir>/<model>: compiled kernel bags; None: eager versions
    lanes: str = "auto"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        bench_entries(self.policies, self.versions)  # a clear error for an unknown name
        if self.duration_s <= 0 or self.repeats < 1:
            raise ValueError("duration must be > 0 and repeats >= 1")

    def entries(self) -> list[tuple[str, str, str]]:
        """(report key, policy, versions setting) for every run asked for."""
        return bench_entries(self.policies, self.versions)


class CoreTarget(BenchTarget):
    """The workload's arrivals replayed in this process, one fresh service per run."""

    def __init__(self, workload: Workload, opts: BenchOptions):
        self.opts, self._workload = opts, workload
        self.label, self.tasks = f"bench {workload.name}", list(workload.tasks)
        self.models = ModelSet(opts.lanes)
        for t in workload.tasks:
            self.models.load(t.model, opts.kernel_bag_dir / t.model if opts.kernel_bag_dir else None)
            if self.models.bags[t.model].fallback_reason:
                log.warning("%s runs eager versions only: %s", t.model, self.models.bags[t.model].fallback_reason)
        self.inputs = {t.name: self.models.graphs[t.model].example_input() for t in workload.tasks}
        self.segment_s = opts.duration_s / opts.repeats
        self.arrivals = arrivals(workload, self.segment_s, seed=opts.seed)
        self.isolation_arrivals = arrivals(workload, opts.isolation_s, seed=opts.seed) if opts.isolation_s > 0 else []
        self.predictors = {(p, v): ContentionPredictor() for _, p, v in opts.entries()}

    def run(self, tasks: list[TaskSpec], policy: str, versions: str, duration_s: float,
            arrivals_: list[tuple[float, str]], predictor: ContentionPredictor) -> RunResult:
        """`tasks` under `policy` on the arrivals (other tasks' skipped) for `duration_s`."""
        svc = CoordinatorService(ServiceOptions(policy=policy, versions=versions, device=self.opts.lanes,
                                                lanes=self._workload.lanes, switchable=False),
                                 models=self.models, predictor=predictor)
        for t in tasks:
            svc.add_task(t, None)  # the models are loaded already
        records = svc.replay(arrivals_, duration_s, self.inputs.__getitem__)
        return RunResult(records, svc.grant_us(), duration_s)

    def alone_metrics(self, task: TaskSpec, result: RunResult) -> dict:
        """For the cost model (bench/bound.py): the frame's least stage core time and fastest stage
        time alone, from the bag's profiles, and its host time measured alone (first grant to
        done, minus the stages' time on their lanes; a queue alone is not a cost)."""
        done = [r for r in result.records if r.outcome is Outcome.DONE]
        host = [r.finished - r.started - sum(s.finished - s.started for s in r.stage_times) for r in done]
        chooser = VersionChooser(self.models.bags, "solo")
        return {**stage_costs(chooser, task.model, os.cpu_count() or 1),
                "host_ms": 1e3 * statistics.fmean(host) if host else math.nan}

    def alone(self, task: TaskSpec) -> RunResult:
        return self.run([task], ISOLATION_POLICY, ISOLATION_VERSIONS, self.opts.isolation_s,
                        self.isolation_arrivals, ContentionPredictor())

    def replay(self, policy: str, versions: str) -> RunResult:
        return self.run(self.tasks, policy, versions, self.segment_s, self.arrivals, self.predictors[policy, versions])

    def workload(self) -> Workload:
        return self._workload

    def settings(self) -> dict:
        o = self.opts
        return {"duration_s": o.duration_s, "repeats": o.repeats, "isolation_s": o.isolation_s,
                "lanes": self._workload.lanes, "lane_kind": resolve_kind(o.lanes), "seed": o.seed,
                "kernel_bags": bag_sources(self.models.bags)}


def run_bench(workload: Workload, opts: BenchOptions) -> tuple[dict, dict]:
    """Returns the report (as written to report.json) and the raw latencies per entry and task."""
    result = drive(CoreTarget(workload, opts), opts.entries(), opts.repeats, isolation=opts.isolation_s > 0,
                   progress=opts.progress)
    return result.report, result.latencies


def save(report: dict, latencies: dict, out_dir: str | Path) -> list[Path]:
    return write_policy_report(report, latencies, Path(out_dir))
