"""Workloads from YAML, frame arrivals, per-policy metrics, and the policy report on disk."""
from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from aaron_ros.bench.bound import stage_costs, throughput_bound
from aaron_ros.bench.policy_report import build_report, plot_miss_rate, render_markdown, write_policy_report
from aaron_ros.bench.workload import TASK_KEYS, Workload, arrivals, load_workload
from aaron_ros.common.machine import cpu_text
from aaron_ros.common.stats import LatencyHistogram, percentiles, summarize
from aaron_ros.coordinator.metrics import policy_metrics, task_metrics
from aaron_ros.coordinator.types import JobRecord, StageTime, TaskSpec
from aaron_ros.coordinator.versions import VersionChooser
from aaron_ros.kernels.bag import KernelBag
from aaron_ros.kernels.version import LevelProfile, ResourceShape, Version
from aaron_ros.models.registry import model_names

SHIPPED = ("f1tenth", "f1tenth_light", "ar_glasses", "aaron_fig3")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- workloads ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_workloads_load(name):
    w = load_workload(name)
    assert w.name == name and w.path is not None and w.path.name == f"{name}.yaml"
    assert w.lanes >= 1 and w.tasks and w.description
    assert all(isinstance(t, TaskSpec) and t.model in model_names() for t in w.tasks)
    assert len({t.name for t in w.tasks}) == len(w.tasks)
    assert any(t.critical for t in w.tasks)
    # Also loadable by path, to the same tasks.
    assert load_workload(w.path).tasks == w.tasks


def test_f1tenth_has_one_feasible_critical_detector():
    w = load_workload("f1tenth")
    critical = [t for t in w.tasks if t.critical]
    assert len(critical) == 1 and critical[0].model == "tiny_yolo"
    assert {t.model for t in w.tasks} == {"tiny_yolo", "mobilenet_v3_small", "seg_net"}
    # With kernel bags tiny_yolo takes ~21 ms alone here: the deadline must hold alone yet be
    # tight (no longer than one period: a frame late by a period is stale for control).
    assert 40 <= critical[0].deadline_ms <= 1000 / critical[0].rate_hz


def test_aaron_fig3_scenarios():
    w = load_workload("aaron_fig3")
    models = {t.name: t.model for t in w.tasks}
    assert sorted(models.values()) == ["inception_v3", "mobilenet_v3_small", "shufflenet_v2"]
    light, heavy = w.scenario("light"), w.scenario("heavy")
    assert sorted(models[n] for n in light.task_names) == ["inception_v3", "mobilenet_v3_small"]
    assert heavy.task_names == w.task_names
    for s in (light, heavy):
        assert [t.model for t in s.critical_tasks] == ["inception_v3"]
        assert s.scenario_name in ("light", "heavy") and s.name != w.name and not s.scenarios
    assert all(t.overload == "keep_latest" for t in w.tasks if not t.critical)
    with pytest.raises(ValueError, match="nope"):
        w.scenario("nope")


GOOD_TASK = ("  - {name: a, model: mobilenet_v3_small, rate_hz: 10, deadline_ms: 50, "
             "criticality: critical, overload: drop_oldest, queue_size: 2}\n")


@pytest.mark.parametrize("text, needles", [
    ("name: w\ncolour: red\ntasks:\n" + GOOD_TASK, ["colour"]),
    ("name: w\ntasks:\n  - {name: a, model: mobilenet_v3_small, rate_hz: 10, deadline_ms: 50, "
     "priority: 3}\n", ["priority"]),
    ("name: w\ntasks:\n  - {name: a, model: alexnet, rate_hz: 10, deadline_ms: 50}\n",
     ["model", "alexnet", "tiny_yolo"]),
    ("name: w\ntasks:\n" + GOOD_TASK + GOOD_TASK, ["duplicate", "'a'"]),
    ("name: w\ntasks:\n  - {name: a, model: seg_net, rate_hz: -5, deadline_ms: 50}\n", ["rate_hz"]),
    ("name: w\ntasks:\n  - {name: a, model: seg_net, rate_hz: 0, deadline_ms: 50}\n", ["rate_hz"]),
    ("name: w\ntasks:\n  - {name: a, model: seg_net, rate_hz: 5, deadline_ms: 0}\n", ["deadline_ms"]),
    ("name: w\ntasks:\n  - {name: a, model: seg_net, rate_hz: 5, deadline_ms: -1}\n", ["deadline_ms"]),
    ("name: w\ntasks:\n  - {name: a, model: seg_net, rate_hz: fast, deadline_ms: 50}\n", ["rate_hz"]),
    ("name: w\ntasks:\n  - {name: a, model: seg_net, deadline_ms: 50}\n", ["rate_hz", "missing"]),
    ("name: w\ntasks: []\n", ["tasks"]),
    ("name: w\n", ["tasks"]),
    ("name: w\ntasks:\n  - {name: a, model: seg_net, rate_hz: 5, deadline_ms: 50\n", ["YAML"]),
    ("name: w\ntasks:\n" + GOOD_TASK + "scenarios:\n  x: [a, b]\n", ["scenarios.x", "'b'"]),
    ("name: w\nlanes: 0\ntasks:\n" + GOOD_TASK, ["lanes"]),
    ("name: w\ntasks:\n  - {name: a, model: seg_net, rate_hz: 5, deadline_ms: 50, "
     "criticality: urgent}\n", ["criticality"]),
])
def test_bad_workload_names_file_and_key(tmp_path, text, needles):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_workload(path)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_unknown_workload_name_lists_shipped():
    with pytest.raises(ValueError, match="f1tenth"):
        load_workload("no_such_workload")


def test_lanes_default_to_cpu_cores(tmp_path):
    import os

    path = tmp_path / "w.yaml"
    path.write_text("tasks:\n" + GOOD_TASK)
    w = load_workload(path)
    assert w.lanes == os.cpu_count() and w.name == "w"  # name defaults to the file's stem
    assert set(TASK_KEYS) == {"name", "model", "rate_hz", "deadline_ms", "criticality", "overload",
                              "queue_size"}


# --- arrivals -------------------------------------------------------------------------------

def test_arrivals_deterministic_in_range_and_at_rate():
    w = load_workload("f1tenth")
    duration = 20.0
    a = arrivals(w, duration, seed=0)
    assert a == arrivals(w, duration, seed=0)
    assert a != arrivals(w, duration, seed=1)
    times = [t for t, _ in a]
    assert times == sorted(times) and all(0.0 <= t < duration for t in times)
    counts = Counter(name for _, name in a)
    assert set(counts) == set(w.task_names)
    for task in w.tasks:
        assert abs(counts[task.name] - task.rate_hz * duration) <= 1
        mine = np.array([t for t, n in a if n == task.name])
        gaps = np.diff(mine)
        assert mine[0] < task.period_s * 1.06  # first frame within (about) one period
        assert np.all(gaps > 0.85 * task.period_s) and np.all(gaps < 1.15 * task.period_s)
        assert np.std(gaps) > 0  # jittered, not a perfect grid


def test_arrivals_of_a_task_do_not_depend_on_the_others():
    w = load_workload("aaron_fig3")
    heavy = arrivals(w.scenario("heavy"), 5.0, seed=3)
    light = arrivals(w.scenario("light"), 5.0, seed=3)
    assert [x for x in heavy if x[1] == "foreground"] == [x for x in light if x[1] == "foreground"]


# --- metrics --------------------------------------------------------------------------------

TASK = TaskSpec("det", "tiny_yolo", rate_hz=10, deadline_ms=100, criticality="critical")
BG = TaskSpec("bg", "mobilenet_v3_small", rate_hz=50, deadline_ms=1000)


def _records(task: str, latencies_ms, dropped=0, failed=0, start=0):
    # Released at 0 so that latency_s is exactly ms / 1e3 (no rounding at the deadline).
    recs = [JobRecord(task, start + i, release=0.0, outcome="done", started=0.0, finished=ms / 1e3)
            for i, ms in enumerate(latencies_ms)]
    n = len(recs)
    recs += [JobRecord(task, start + n + i, release=float(n + i), outcome="dropped")
             for i in range(dropped)]
    recs += [JobRecord(task, start + n + dropped + i, release=float(n + dropped + i),
                       outcome="failed", error="boom") for i in range(failed)]
    return recs


def test_task_metrics_known_values():
    # 1..200 ms against a 100 ms deadline: 101..200 are late.
    recs = _records("det", range(1, 201), dropped=30, failed=20)
    m = task_metrics(recs + _records("other", [5, 6]), TASK, duration_s=10.0)
    assert m["released"] == 250 and m["done"] == 200
    assert m["dropped"] == 30 and m["failed"] == 20 and m["late"] == 100
    assert m["p50_ms"] == pytest.approx(100.5)
    assert m["p95_ms"] == pytest.approx(np.percentile(np.arange(1, 201), 95))
    assert m["p99_ms"] == pytest.approx(198.01)
    assert m["miss_rate"] == pytest.approx((100 + 30 + 20) / 250)
    assert m["fps"] == pytest.approx(20.0)


def test_task_metrics_deadline_is_inclusive_and_empty_is_nan():
    m = task_metrics(_records("det", [100.0, 99.0]), TASK, duration_s=1.0)
    assert m["miss_rate"] == 0.0 and m["late"] == 0
    m = task_metrics(_records("det", [], dropped=3), TASK, duration_s=1.0)
    assert m["miss_rate"] == 1.0 and m["done"] == 0 and math.isnan(m["p99_ms"])
    with pytest.raises(ValueError):
        task_metrics([], TASK, duration_s=0)


def test_latency_percentiles_are_numpys_to_the_last_bit_and_the_histogram_within_half_a_percent():
    rng = np.random.default_rng(0)
    for n in (*range(1, 40), 150, 1001):
        seconds = rng.exponential(0.02, n)
        s = summarize(seconds)
        assert (s.p50_ms, s.p95_ms, s.p99_ms) == tuple(np.percentile(seconds * 1e3, [50, 95, 99]))
    assert percentiles(seconds, (5, 50, 99.9)) == [float(v) for v in np.percentile(seconds, (5, 50, 99.9))]
    assert all(math.isnan(v) for v in (*percentiles([], (50,)), *percentiles([1.0, np.nan], (50, 99))))
    hist = LatencyHistogram()
    for sec in seconds:
        hist.add(sec)
    for got, q in zip(hist.percentiles_ms(50, 99), (50, 99)):
        assert got == pytest.approx(np.percentile(seconds * 1e3, q, method="inverted_cdf"), rel=0.006)
    assert all(math.isnan(v) for v in LatencyHistogram().percentiles_ms(50, 99))


def test_policy_metrics_totals():
    by_task = {"det": _records("det", [50, 150, 60, 70], dropped=1),
               "bg": _records("bg", [10] * 16)}
    m = policy_metrics(by_task, [TASK, BG], duration_s=2.0, grant_us=list(range(1, 101)))
    assert set(m["tasks"]) == {"det", "bg"}
    assert m["throughput_fps"] == pytest.approx(20 / 2.0)
    assert m["grant_us_p50"] == pytest.approx(50.5)
    assert m["grant_us_p99"] == pytest.approx(99.01)
    assert m["critical_p99_ms"] == pytest.approx(m["tasks"]["det"]["p99_ms"])
    assert m["critical_miss_rate"] == pytest.approx(2 / 5)
    assert m["tasks"]["bg"]["miss_rate"] == 0.0
    empty = policy_metrics({}, [TASK], duration_s=1.0, grant_us=[])
    assert math.isnan(empty["grant_us_p50"]) and math.isnan(empty["critical_p99_ms"])


def test_a_grant_costs_its_decision_and_both_hand_offs():
    # Two stages of 4 ms: 100 and 300 us from grant to start on the lane, 200 and 400 us from
    # the end on the lane to the coordinator seeing it; decisions of 20 and 60 us.
    times = (StageTime(0, 0.0, 0.0001, 0.0041, 0.0043, queued=0.00005),
             StageTime(1, 0.005, 0.0053, 0.0093, 0.0097, queued=0.00525))
    rec = JobRecord("det", 0, release=0.0, outcome="done", started=0.0, finished=0.0097, stage_times=times)
    m = policy_metrics({"det": [rec]}, [TASK], duration_s=1.0, grant_us=[20.0, 60.0])
    assert m["stage_ms_mean"] == pytest.approx(4.0)
    assert (m["to_lane_us"], m["from_lane_us"]) == (pytest.approx(200.0), pytest.approx(300.0))
    assert m["queue_us"] == pytest.approx(150.0)  # of the 200: 50 and 250 us to the lane's queue
    assert m["grant_share"] == pytest.approx(40e-3 / 4.0)
    assert m["grant_wall_share"] == pytest.approx((40 + 200 + 300) * 1e-3 / 4.0)
    assert math.isnan(policy_metrics({}, [TASK], duration_s=1.0, grant_us=[])["grant_wall_share"])


# --- report ---------------------------------------------------------------------------------

def _synthetic():
    w = Workload("synthetic", "two tasks", lanes=2, tasks=[TASK, BG])
    rng = np.random.default_rng(0)
    runs, latencies = {}, {}
    for key, scale in (("sequential", 3.0), ("naive", 2.0), ("aaron", 1.0), ("aaron/solo", 1.2)):
        lat = {"det": list(rng.gamma(4, 15 * scale, 80)), "bg": list(rng.gamma(4, 3 * scale, 300))}
        by_task = {"det": _records("det", lat["det"], dropped=int(10 * scale)),
                   "bg": _records("bg", lat["bg"])}
        runs[key] = policy_metrics(by_task, w.tasks, 10.0, list(rng.gamma(2, 10, 500)))
        latencies[key] = lat
    isolation = {"det": {"p50_ms": 55.0, "p99_ms": 70.0}, "bg": {"p50_ms": 11.0, "p99_ms": 14.0}}
    return w, runs, isolation, latencies


def test_report_has_every_key_and_writes_files(tmp_path):
    w, runs, isolation, latencies = _synthetic()
    report = build_report(w, runs, isolation, latencies, {"duration_s": 10.0, "seed": 0})
    paths = write_policy_report(report, latencies, tmp_path)
    names = {p.name for p in paths}
    assert {"report.json", "report.md", "latency_cdf.png", "miss_rate.png", "throughput.png"} <= names
    assert all(p.is_file() and p.parent == tmp_path for p in paths)

    data = json.loads((tmp_path / "report.json").read_text())  # strict JSON: no NaN
    assert set(data["policies"]) == set(runs)
    for key, p in data["policies"].items():
        for task in ("det", "bg"):
            t = p["tasks"][task]
            for k in ("p50_ms", "p95_ms", "p99_ms", "miss_rate", "fps", "dropped"):
                assert isinstance(t[k], (int, float)), (key, task, k)
        for k in ("throughput_fps", "grant_us_p50", "grant_us_p99", "critical_p99_over_isolated"):
            assert isinstance(p[k], float), (key, k)
        assert p["critical_p99_over_isolated"] == pytest.approx(p["tasks"]["det"]["p99_ms"] / 70.0)
    for task in ("det", "bg"):
        assert set(data["isolation"][task]) >= {"p50_ms", "p99_ms"}
    assert data["workload"]["name"] == "synthetic"
    assert [t["name"] for t in data["workload"]["tasks"]] == ["det", "bg"]
    for t in data["workload"]["tasks"]:
        assert set(t) >= set(TASK_KEYS)
    assert data["workload"]["tasks"][0]["deadline_ms"] == 100
    assert {"cpu", "cores", "simd", "torch"} <= set(data["machine"])
    assert f"Machine: {cpu_text(data['machine'])};" in (tmp_path / "report.md").read_text()
    assert {"aaron_ros", "torch", "python"} <= set(data["versions"])
    assert data["settings"] == {"duration_s": 10.0, "seed": 0}

    md = (tmp_path / "report.md").read_text()
    for key in runs:
        assert f"`{key}`" in md
    assert "## Comparison" in md and "throughput / sequential" in md and "throughput / naive" in md

    for name in ("latency_cdf.png", "miss_rate.png", "throughput.png"):
        raw = (tmp_path / name).read_bytes()
        assert raw[:8] == PNG_MAGIC and len(raw) > 5000
        import matplotlib.image

        assert matplotlib.image.imread(tmp_path / name).ndim == 3


def test_what_a_critical_task_misses_alone_is_said_and_drawn(tmp_path):
    """The critical task's misses alone say whether the machine can keep the case at all: the report
    says so under the comparison and draws them across the task's bars."""
    w, runs, isolation, latencies = _synthetic()
    for missed, verdict in ((0.04, "no policy can be expected to keep it"), (0.0, "what sharing the machine costs")):
        iso = {"det": {**isolation["det"], "miss_rate": missed}, "bg": {**isolation["bg"], "miss_rate": 0.5}}
        report = build_report(w, runs, iso, latencies, {})
        md = render_markdown(report)
        assert (f"Alone, with the cores to itself, the critical det missed {100 * missed:.1f}% of its deadlines "
                f"(p99 70.0 ms against 100): ") in md and verdict in md
        assert md.index("## Comparison") < md.index("Alone, with the cores")
        assert "critical bg" not in md  # a normal task's misses alone bound nothing the goals ask
        assert f"| 55.0         | 70.0         | {100 * missed:.1f}%" in md.split("## Policy")[0]
    drawn = plot_miss_rate(report, tmp_path / "with.png").read_bytes()
    assert "Alone, with" not in render_markdown(build_report(w, runs, isolation, latencies, {}))
    plain = plot_miss_rate(build_report(w, runs, isolation, latencies, {}), tmp_path / "without.png").read_bytes()
    assert drawn[:8] == PNG_MAGIC and drawn != plain


def test_report_survives_missing_data(tmp_path):
    # A policy that finished no critical frame, a task with no isolation, no baselines.
    w, runs, isolation, latencies = _synthetic()
    starved = policy_metrics({"bg": _records("bg", [5.0] * 10)}, w.tasks, 10.0, [])
    report = build_report(w, {"starved": starved}, {"bg": isolation["bg"]},
                          {"starved": {"bg": [5.0] * 10}}, {})
    p = report["policies"]["starved"]
    assert p["tasks"]["det"]["p99_ms"] is None and p["critical_p99_over_isolated"] is None
    assert p["grant_us_p50"] is None
    write_policy_report(report, {"starved": {"bg": [5.0] * 10}}, tmp_path)
    json.loads((tmp_path / "report.json").read_text())
    assert "`starved`" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "latency_cdf.png").read_bytes()[:8] == PNG_MAGIC


def test_the_cost_model_bounds_throughput_by_cores_and_by_one_lane():
    wl = Workload("w", "", 2, [TaskSpec("a", "m", rate_hz=100, deadline_ms=50),
                               TaskSpec("b", "m", rate_hz=50, deadline_ms=50)])
    iso = {"a": {"core_ms": 10.0, "solo_ms": 6.0}, "b": {"core_ms": 20.0, "solo_ms": 12.0}}
    bound = throughput_bound(wl, iso, cores=2)
    # 100 x 10 + 50 x 20 = 2000 core-ms a second: two cores just hold it.
    assert bound["core_ms_per_s"] == 2000 and bound["cores_bound_fps"] == 150
    # One at a time: 100 x 6 + 50 x 12 = 1200 ms a second. At most: all 100 cheap frames (600 ms),
    # and 400 / 12 of the costly ones (shedding both in proportion would serve 150 / 1.2 = 125).
    assert bound["one_lane_bound_fps"] == pytest.approx(100 + 400 / 12)
    assert throughput_bound(wl, iso, cores=1)["cores_bound_fps"] == 100  # the cheap frames fill the core
    assert math.isnan(throughput_bound(wl, {"a": iso["a"]}, cores=2)["cores_bound_fps"])  # b's cost unknown


def test_a_stage_cost_is_its_least_core_time_and_its_fastest_time_alone():
    two = Version("m.s0.ort.t2", 0, "onnxruntime", ResourceShape(threads=2),
                  profiles={"isolation": LevelProfile(6.0, 6.5, 5)})
    one = Version("m.s0.ort.t1", 0, "onnxruntime", ResourceShape(threads=1),
                  profiles={"isolation": LevelProfile(10.0, 11.0, 5)})
    chooser = VersionChooser({"m": KernelBag(graph=None, versions={0: [one, two]}, runners={})}, "solo")
    assert stage_costs(chooser, "m", cores=2) == {"core_ms": 10.0, "solo_ms": 6.0}  # 1 x 10 < 2 x 6
    assert math.isnan(stage_costs(VersionChooser({}, "solo"), "m", cores=2)["core_ms"])


def test_the_machine_is_named_with_its_vector_units():
    """Two machines showing one model name ran the models three times apart: the units say which."""
    epyc, xeon = ({"cpu": "AMD EPYC", "cores": 2, "simd": ["AVX2", "FMA"]},
                  {"cpu": "Xeon", "cores": 4, "simd": ["AVX2", "FMA", "AVX-512"]})
    assert cpu_text(epyc) == "AMD EPYC, 2 cores, AVX2 FMA (no AVX-512)"
    assert cpu_text(xeon) == "Xeon, 4 cores, AVX2 FMA AVX-512"
    assert cpu_text({"cpu": "Cortex-A78", "cores": 8, "simd": []}) == "Cortex-A78, 8 cores"  # none of these units
    assert cpu_text({"cpu": "AMD EPYC", "cores": 2}) == "AMD EPYC, 2 cores"  # a report from before they were kept
