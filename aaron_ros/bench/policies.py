"""The policy benchmark: every policy (and versions setting) on the same frame arrivals, in one
process, interleaved in order and repeated; each task also measured alone in the same run."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from aaron_ros.coordinator.metrics import policy_metrics
from aaron_ros.common.stats import summarize
from aaron_ros.bench.policy_report import build_report, write_policy_report
from aaron_ros.bench.workload import Workload, arrivals
from aaron_ros.contention.predictor import ContentionPredictor
from aaron_ros.coordinator.coordinator import Coordinator
from aaron_ros.coordinator.live import run_live
from aaron_ros.coordinator.policies import DEFAULT_VERSIONS, check_policy, make_policy
from aaron_ros.coordinator.types import JobRecord, TaskSpec
from aaron_ros.coordinator.versions import VersionChooser, check_versions
from aaron_ros.kernels.bag import KernelBag, load_bag_or_eager
from aaron_ros.models import StageGraph, build_model
from aaron_ros.runtime.lanes import LanePool, resolve_kind, uniform_specs

log = logging.getLogger(__name__)


@dataclass
class BenchOptions:
    policies: list[str]
    versions: list[str] | None = None  # None: each policy's own default
    duration_s: float = 20.0  # per policy entry, summed over the repeats
    repeats: int = 2
    isolation_s: float = 4.0  # per task
    bags_dir: Path | None = None
    lanes: str = "auto"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for p in self.policies:
            check_policy(p)
        for v in self.versions or []:
            check_versions(v)
        if self.duration_s <= 0 or self.repeats < 1:
            raise ValueError("duration must be > 0 and repeats >= 1")

    def entries(self) -> list[tuple[str, str, str]]:
        """(report key, policy, versions setting) for every run asked for."""
        if not self.versions:
            return [(p, p, DEFAULT_VERSIONS[p]) for p in self.policies]
        return [(f"{p}/{v}", p, v) for p in self.policies for v in self.versions]


@dataclass
class Setup:
    workload: Workload
    graphs: dict[str, StageGraph]
    bags: dict[str, KernelBag]
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)


def prepare(workload: Workload, opts: BenchOptions) -> Setup:
    graphs = {t.model: build_model(t.model) for t in workload.tasks}
    bags = {}
    for model, graph in graphs.items():
        bag_dir = opts.bags_dir / model if opts.bags_dir else None
        bags[model] = load_bag_or_eager(bag_dir, graph)
        if bags[model].fallback_reason:
            log.warning("%s runs eager versions only: %s", model, bags[model].fallback_reason)
    inputs = {t.name: graphs[t.model].example_input() for t in workload.tasks}
    return Setup(workload, graphs, bags, inputs)


def run_once(setup: Setup, tasks: list[TaskSpec], policy: str, setting: str, duration_s: float,
             arrivals_: list[tuple[float, str]], lanes_kind: str, predictor: ContentionPredictor):
    pol = make_policy(policy)
    n = pol.lanes(setup.workload.lanes, len(tasks))
    kind = resolve_kind(lanes_kind)
    stages = {t.name: len(setup.graphs[t.model]) for t in tasks}
    names = {t.name for t in tasks}
    with LanePool(uniform_specs(n, kind=kind, threads=1)) as pool:
        coord = Coordinator(tasks, stages, [lane.name for lane in pool], pol,
                            VersionChooser(setup.bags, setting, predictor), cores=setup.workload.lanes)
        run_live(coord, pool, setup.bags, [a for a in arrivals_ if a[1] in names], duration_s,
                 lambda task: setup.inputs[task])
    return coord.records, coord.grant_us


def run_bench(workload: Workload, opts: BenchOptions) -> tuple[dict, dict]:
    """Returns the report (as written to report.json) and the raw latencies per entry and task."""
    setup = prepare(workload, opts)
    entries = opts.entries()
    segment = opts.duration_s / opts.repeats
    arr = arrivals(workload, segment, seed=opts.seed)
    iso_arr = arrivals(workload, opts.isolation_s, seed=opts.seed)
    records: dict[str, list[JobRecord]] = {key: [] for key, _, _ in entries}
    grant_us: dict[str, list[float]] = {key: [] for key, _, _ in entries}
    predictors = {key: ContentionPredictor() for key, _, _ in entries}
    iso_latency: dict[str, list[float]] = {}
    total = len(workload.tasks) + opts.repeats * len(entries)
    with tqdm(total=total, desc=f"bench {workload.name}", unit="run", disable=not opts.progress) as bar:
        for task in workload.tasks:  # each task alone, solo versions, same lanes
            bar.set_postfix_str(f"{task.name} alone")
            recs, _ = run_once(setup, [task], "priority", "solo", opts.isolation_s, iso_arr, opts.lanes,
                               ContentionPredictor())
            iso_latency[task.name] = [r.latency_s * 1e3 for r in recs if r.outcome == "done"]
            bar.update()
        for _ in range(opts.repeats):  # interleaved: every entry once per round
            for key, policy, setting in entries:
                bar.set_postfix_str(key)
                recs, us = run_once(setup, list(workload.tasks), policy, setting, segment, arr, opts.lanes,
                                    predictors[key])
                records[key] += recs
                grant_us[key] += us
                bar.update()
    runs, latencies = {}, {}
    for key, _, _ in entries:
        by_task = {t.name: [r for r in records[key] if r.task == t.name] for t in workload.tasks}
        runs[key] = policy_metrics(by_task, workload.tasks, opts.duration_s, grant_us[key])
        latencies[key] = {t: [r.latency_s * 1e3 for r in rs if r.outcome == "done"] for t, rs in by_task.items()}
    isolation = {}
    for name, lat in iso_latency.items():
        s = summarize([ms / 1e3 for ms in lat])
        isolation[name] = {"p50_ms": s.p50_ms, "p99_ms": s.p99_ms}
    settings = {"duration_s": opts.duration_s, "repeats": opts.repeats, "isolation_s": opts.isolation_s,
                "lanes": workload.lanes, "lane_kind": resolve_kind(opts.lanes), "seed": opts.seed,
                "bags": {m: (b.fallback_reason or "kernel bag") for m, b in setup.bags.items()},
                "entries": [{"key": k, "policy": p, "versions": v} for k, p, v in entries]}
    report = build_report(workload, runs, isolation, latencies, settings)
    return report, latencies


def save(report: dict, latencies: dict, out_dir: str | Path) -> list[Path]:
    return write_policy_report(report, latencies, Path(out_dir))
