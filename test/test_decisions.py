"""The decision-cost bench: every policy decides on the simulated clock, with the caches warm and
evicted, and the command prints a row per policy."""
from __future__ import annotations

from aaron_ros.bench.decisions import decision_cost
from aaron_ros.bench.workload import Workload
from aaron_ros.cli import main
from aaron_ros.coordinator.policies import POLICIES
from aaron_ros.coordinator.types import TaskSpec
from aaron_ros.kernels.bag import KernelBag
from aaron_ros.kernels.version import LevelProfile, ResourceShape, Version


def _bag(model: str, ms: float, stages: int) -> KernelBag:
    def version(stage: int, threads: int) -> Version:
        t = ms / threads ** 0.8
        return Version(id=f"{model}.s{stage}.t{threads}", stage=stage, backend="onnxruntime",
                       shape=ResourceShape(threads=threads), profiles={"isolation": LevelProfile(t, t * 1.1, 5)})
    return KernelBag(graph=None, versions={s: [version(s, 1), version(s, 2)] for s in range(stages)}, runners={})


def test_every_policy_decides_warm_and_with_the_caches_evicted():
    tasks = [TaskSpec("det", "det_model", 20, 50, "critical"), TaskSpec("bg", "bg_model", 30, 200)]
    bags = {"det_model": _bag("det_model", 5.0, 3), "bg_model": _bag("bg_model", 8.0, 2)}
    workload = Workload("tiny", "two tasks", 2, tasks)
    for policy in POLICIES:
        cost = decision_cost(workload, bags, policy, duration_s=1.0, evict_mb=1.0, rounds=1)
        # 20 detector frames of 3 stages and 30 of 2: every one granted, stage by stage.
        assert cost.policy == policy and cost.grants == 20 * 3 + 30 * 2
        assert cost.warm_us > 0 and cost.evicted_us > 0


def test_the_cli_prints_a_row_per_policy(tmp_path, capsys):
    # No kernel bags there: timed eager versions, as the runtime falls back to.
    assert main(["decisions", "--workload", "f1tenth_light", "--policies", "naive,aaron", "--duration", "1",
                 "--kernel-bags", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| naive") or line.startswith("| aaron")]
    assert len(rows) == 2 and "caches evicted (32 MB)" in out
