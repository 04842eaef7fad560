"""Short real runs of every policy on small models: real lanes, real tensors, real timing."""
from __future__ import annotations

import json

import pytest

from aaron_ros.bench.policies import BenchOptions, CoreTarget, run_bench
from aaron_ros.bench.workload import load_workload
from aaron_ros.cli import main
from aaron_ros.contention.predictor import ContentionPredictor
from aaron_ros.coordinator.policies import POLICIES
from aaron_ros.models import Stage

WORKLOAD = """
name: tiny
description: two small models for tests
lanes: 2
tasks:
  - {name: cls, model: mobilenet_v3_small, rate_hz: 15, deadline_ms: 150, criticality: critical,
     overload: keep_latest, queue_size: 1}
  - {name: seg, model: seg_net, rate_hz: 8, deadline_ms: 300}
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(WORKLOAD)
    return load_workload(path)


def test_every_policy_runs_for_real(tiny):
    opts = BenchOptions(policies=list(POLICIES), duration_s=1.5, repeats=1, isolation_s=0.6, progress=False)
    report, latencies = run_bench(tiny, opts)
    assert set(report["policies"]) == set(POLICIES)
    for key, entry in report["policies"].items():
        for task in ("cls", "seg"):
            t = entry["tasks"][task]
            assert t["fps"] > 0 and t["p50_ms"] > 0, (key, task, t)
            assert len(latencies[key][task]) >= 1
        assert entry["grant_us_p50"] > 0
        assert 0 < entry["grant_share"] < 1 and entry["stage_ms_mean"] > 0
    assert report["isolation"]["cls"]["p50_ms"] > 0
    assert [t["name"] for t in report["workload"]["tasks"]] == ["cls", "seg"]
    # Without kernel bags the eager fallback is timed at start (kernels/fallback.py): the cost
    # model has a least core time per frame, and a bound (test_bench_report checks its sums).
    iso = report["isolation"]["cls"]
    assert iso["host_ms"] > 0 and iso["p50_ms"] > iso["host_ms"] and iso["core_ms"] > 0
    assert report["bound"]["core_ms_per_s"] > 0


def test_version_settings_are_separate_entries(tiny):
    opts = BenchOptions(policies=["aaron"], versions=["eager", "solo"], duration_s=1.0, repeats=1,
                        isolation_s=0.5, progress=False)
    report, _ = run_bench(tiny, opts)
    assert set(report["policies"]) == {"aaron/eager", "aaron/solo"}


def test_a_failing_model_is_counted_and_the_other_task_keeps_running(tiny):
    """A stage that raises (a fault injected on purpose: a real model never fails on demand)."""
    target = CoreTarget(tiny, BenchOptions(policies=["aaron"], lanes="cpu", progress=False))
    bag = target.models.bags["seg_net"]

    def broken(x):
        raise RuntimeError("segmentation model failed")

    for vs in bag.versions.values():
        for v in vs:
            bag.runners[v.id] = Stage(0, "broken", broken)
    from aaron_ros.bench.workload import arrivals

    records = target.run(list(tiny.tasks), "aaron", "solo", 1.5, arrivals(tiny, 1.5), ContentionPredictor()).records
    seg = [r for r in records if r.task == "seg"]
    cls = [r for r in records if r.task == "cls"]
    assert seg and all(r.outcome in ("failed", "dropped") for r in seg)
    assert any("segmentation model failed" in (r.error or "") for r in seg)
    assert sum(r.outcome == "done" for r in cls) >= 10


def test_bench_command_writes_the_report(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "no_bags").mkdir()  # a folder without this workload's bags: eager versions
    assert main(["bench", "--workload", str(tiny.path), "--policies", "sequential,aaron", "--duration", "1",
                 "--repeats", "1", "--isolation", "0.5", "--bags", str(tmp_path / "no_bags"),
                 "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert set(data["policies"]) == {"sequential", "aaron"}
    for name in ("report.md", "latency_cdf.png", "miss_rate.png", "throughput.png"):
        assert (out / name).is_file()
    assert "Comparison" in capsys.readouterr().out
    assert main(["bench", "--workload", "nope", "--out", str(out)]) == 2
    assert main(["bench", "--workload", str(tiny.path), "--policies", "fifo", "--out", str(out)]) == 2
