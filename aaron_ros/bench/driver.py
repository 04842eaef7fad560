"""The one bench driver: each task alone first, then every policy entry once per round, `repeats`
rounds, then the metrics and the report. What it drives is a `BenchTarget`, a way to feed frames
to a running system and collect how they ended: the core bench replays timed arrivals in this
process (`bench/policies.py`), the ROS bench replays a bag into the ROS 2 container
(`ros/bench/`). A target adds its own measurements through two hooks and `RunResult.extra`.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from aaron_ros.bench.policy_report import build_report
from aaron_ros.bench.workload import Workload
from aaron_ros.coordinator.metrics import policy_metrics, task_metrics
from aaron_ros.coordinator.policies import DEFAULT_VERSIONS, check_policy
from aaron_ros.coordinator.types import JobRecord, Outcome, TaskSpec
from aaron_ros.coordinator.versions import check_versions
from aaron_ros.kernels.bag import KernelBag

# Each task alone: the highest-priority policy with solo versions, as a baseline for the others.
ISOLATION_POLICY, ISOLATION_VERSIONS = "priority", "solo"

Entry = tuple[str, str, str]  # (report key, policy, versions setting)


def bench_entries(policies: Sequence[str], versions: Sequence[str] | None = None) -> list[Entry]:
    """(report key, policy, versions setting) for every run asked for; versions None: each
    policy's own default. Unknown names raise a ValueError naming them."""
    for p in policies:
        check_policy(p)
    for v in versions or []:
        check_versions(v)
    if not versions:
        return [(p, p, DEFAULT_VERSIONS[p]) for p in policies]
    return [(f"{p}/{v}", p, v) for p in policies for v in versions]


def bag_sources(bags: Mapping[str, KernelBag]) -> dict[str, str]:
    """Per model, where its versions came from (the report's `settings.bags`)."""
    return {m: (b.fallback_reason or "kernel bag") for m, b in bags.items()}


def done_ms(records: Sequence[JobRecord]) -> list[float]:
    """Latencies (ms, release to done) of the finished frames."""
    return [r.latency_s * 1e3 for r in records if r.outcome is Outcome.DONE]


@dataclass
class RunResult:
    """One run of a target: how each frame ended, the coordinator's grant times (µs), how long
    frames were fed (s), and whatever else only this target measures."""

    records: list[JobRecord]
    grant_us: list[float]
    seconds: float
    extra: Any = None


class BenchTarget(ABC):
    """What the driver runs. `tasks` are run alone in this order; `workload` and `settings` are
    read after the runs (a target may learn them while running)."""

    label: str = "bench"  # the progress bar's
    tasks: Sequence[TaskSpec] = ()

    @abstractmethod
    def alone(self, task: TaskSpec) -> RunResult:
        """`task` alone, under ISOLATION_POLICY with ISOLATION_VERSIONS."""

    @abstractmethod
    def replay(self, policy: str, versions: str) -> RunResult:
        """Every task under `policy`, on the same frames as every other replay."""

    @abstractmethod
    def workload(self) -> Workload: ...

    @abstractmethod
    def settings(self) -> dict: ...

    def alone_metrics(self, task: TaskSpec, result: RunResult) -> dict:
        """Extra isolation keys for `task` (beside p50_ms, p99_ms)."""
        return {}

    def entry_metrics(self, metrics: dict, results: Sequence[RunResult], workload: Workload) -> None:  # noqa: B027
        """Add this target's own keys to an entry's `policy_metrics` dict (in place); none by default."""

    def round_metrics(self, result: RunResult) -> dict:
        """This target's own keys for one round of an entry (beside `_round`'s); none by default."""
        return {}

    def close(self) -> None:  # noqa: B027
        """After the last run (also on failure); nothing to close by default."""


@dataclass
class BenchResult:
    report: dict  # as written to report.json
    latencies: dict[str, dict[str, list[float]]]  # entry -> task -> done latencies (ms)
    runs: dict[str, list[RunResult]]  # entry -> one result per round
    alone: dict[str, RunResult]  # task -> its isolation run


def drive(target: BenchTarget, entries: Sequence[Entry], repeats: int, isolation: bool = True,
          progress: bool = True) -> BenchResult:
    """Each task alone (if `isolation`), then `repeats` rounds, each running every entry once in
    order (interleaved, so a drift of the machine spreads over all entries); then the report."""
    alone: dict[str, RunResult] = {}
    runs: dict[str, list[RunResult]] = {key: [] for key, _, _ in entries}
    total = (len(target.tasks) if isolation else 0) + repeats * len(entries)
    try:
        with tqdm(total=total, desc=target.label, unit="run", disable=not progress) as bar:
            for task in target.tasks if isolation else ():
                bar.set_postfix_str(f"{task.name} alone")
                alone[task.name] = target.alone(task)
                bar.update()
            for _ in range(repeats):
                for key, policy, setting in entries:
                    bar.set_postfix_str(key)
                    runs[key].append(target.replay(policy, setting))
                    bar.update()
    finally:
        target.close()
    report, latencies = _report(target, entries, alone, runs)
    return BenchResult(report, latencies, runs, alone)


def _by_task(records: Sequence[JobRecord], workload: Workload) -> dict[str, list[JobRecord]]:
    return {t.name: [x for x in records if x.task == t.name] for t in workload.tasks}


def _round(target: BenchTarget, result: RunResult, workload: Workload) -> dict:
    """One round of an entry alone: how far the machine moves a policy from round to round."""
    m = policy_metrics(_by_task(result.records, workload), workload.tasks, result.seconds, result.grant_us)
    return {"critical_miss_rate": m["critical_miss_rate"], "throughput_fps": m["throughput_fps"],
            "goodput_fps": m["goodput_fps"], "dropped": sum(t["dropped"] for t in m["tasks"].values()),
            **target.round_metrics(result)}


def _report(target: BenchTarget, entries: Sequence[Entry], alone: Mapping[str, RunResult],
            runs: Mapping[str, list[RunResult]]) -> tuple[dict, dict]:
    workload = target.workload()
    metrics, latencies = {}, {}
    for key, _, _ in entries:
        results = runs[key]
        by_task = _by_task([x for r in results for x in r.records], workload)
        m = policy_metrics(by_task, workload.tasks, math.fsum(r.seconds for r in results),
                           [u for r in results for u in r.grant_us])
        target.entry_metrics(m, results, workload)
        if len(results) > 1:
            m["rounds"] = [_round(target, r, workload) for r in results]
        metrics[key] = m
        latencies[key] = {t: done_ms(rs) for t, rs in by_task.items()}
    isolation = {}
    for task in target.tasks:
        if task.name in alone:
            run = alone[task.name]
            # Its misses with the cores to itself say what the machine allows the task at all.
            m = task_metrics(run.records, task, run.seconds)
            isolation[task.name] = {"p50_ms": m["p50_ms"], "p99_ms": m["p99_ms"], "miss_rate": m["miss_rate"],
                                    **target.alone_metrics(task, run)}
    settings = {**target.settings(), "entries": [{"key": k, "policy": p, "versions": v} for k, p, v in entries]}
    return build_report(workload, metrics, isolation, latencies, settings), latencies
