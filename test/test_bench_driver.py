"""The bench driver both benches share: each task alone first, then every entry once per round,
the results of an entry pooled over its rounds, a target's own keys added, the target closed."""
from __future__ import annotations

import pytest

from aaron_ros.bench.driver import ISOLATION_POLICY, ISOLATION_VERSIONS, BenchTarget, RunResult, bench_entries, drive
from aaron_ros.bench.policies import BenchOptions, CoreTarget
from aaron_ros.bench.policy_report import CPU_OUTSIDE, render_markdown
from aaron_ros.bench.workload import Workload
from aaron_ros.coordinator.types import JobRecord, Outcome, TaskSpec

TASKS = [TaskSpec("cls", "mobilenet_v3_small", 10, 100, "critical"), TaskSpec("seg", "seg_net", 5, 400)]
WORKLOAD = Workload("tiny", "driver test", lanes=2, tasks=TASKS)


class Scripted(BenchTarget):
    """Runs nothing: each call answers records whose latencies say which call it was."""

    label = "scripted"
    tasks = TASKS

    def __init__(self, fail_at: int | None = None, cpu: bool = False):
        self.calls: list[str] = []
        self.closed = False
        self.fail_at = fail_at
        self.cpu = cpu  # answer a CPU figure per round, as the ROS bench does

    def _result(self, call: str, tasks: list[str], latency_s: float, seconds: float) -> RunResult:
        if len(self.calls) == self.fail_at:
            raise RuntimeError("the system broke")
        self.calls.append(call)
        n = len(self.calls)
        records = [JobRecord(t, f, 0.0, Outcome.DONE, finished=latency_s) for t in tasks for f in range(n)]
        records.append(JobRecord(tasks[0], n, 0.0, Outcome.DROPPED))
        return RunResult(records, [float(n)], seconds, extra=n)

    def alone(self, task):
        return self._result(f"{task.name} alone", [task.name], 0.010, 1.0)

    def replay(self, policy, versions):
        return self._result(f"{policy}/{versions}", [t.name for t in TASKS], 0.020 if policy == "aaron" else 0.040, 2.0)

    def workload(self):
        return WORKLOAD

    def settings(self):
        return {"what": "scripted"}

    def alone_metrics(self, task, result):
        return {"call": result.extra}

    def entry_metrics(self, metrics, results, workload):
        metrics["calls"] = [r.extra for r in results]

    def round_metrics(self, result):
        return {CPU_OUTSIDE: result.extra / 4} if self.cpu else {}

    def close(self):
        self.closed = True


def test_isolation_first_then_interleaved_rounds_pooled_per_entry():
    target = Scripted()
    entries = bench_entries(["sequential", "aaron"], ["solo", "eager"])
    result = drive(target, entries, repeats=2, progress=False)
    keys = [k for k, _, _ in entries]
    assert target.calls == ["cls alone", "seg alone", *keys, *keys]  # alone first, then round by round
    assert target.closed
    r = result.report
    assert list(r["policies"]) == keys and r["settings"]["what"] == "scripted"
    assert [e["key"] for e in r["settings"]["entries"]] == keys
    # An entry pools its rounds: calls 3 and 7 for the first, 6 and 10 for the last.
    assert r["policies"]["sequential/solo"]["calls"] == [3, 7]
    assert r["policies"]["aaron/eager"]["calls"] == [6, 10]
    p = r["policies"]["aaron/eager"]
    assert p["duration_s"] == 4.0 and p["grants"] == 2 and p["grant_us_p50"] == 8.0
    assert p["tasks"]["cls"]["done"] == 16 and p["tasks"]["cls"]["dropped"] == 2
    assert p["tasks"]["cls"]["fps"] == 16 / 4.0 and p["tasks"]["cls"]["p50_ms"] == pytest.approx(20.0)
    assert r["policies"]["sequential/eager"]["tasks"]["seg"]["p99_ms"] == pytest.approx(40.0)
    assert result.latencies["aaron/solo"]["seg"] == pytest.approx([20.0] * 14)
    # Alone, call 1 finished one frame on time and dropped one: half its deadlines missed.
    assert r["isolation"]["cls"] == {"p50_ms": pytest.approx(10.0), "p99_ms": pytest.approx(10.0),
                                     "miss_rate": pytest.approx(0.5), "call": 1}
    assert r["isolation"]["seg"]["call"] == 2 and r["isolation"]["seg"]["miss_rate"] == pytest.approx(1 / 3)
    assert "Alone, with the cores to itself, the critical cls missed 50.0% of its deadlines" in render_markdown(r)
    assert r["policies"]["aaron/solo"]["tasks"]["cls"]["p99_over_isolated"] == pytest.approx(2.0)
    # Each round alone too: calls 6 and 10 finished 6 and 10 frames a task in 2 s, dropped one.
    assert p["rounds"] == [{"critical_miss_rate": pytest.approx(1 / 7), "throughput_fps": 6.0, "goodput_fps": 6.0,
                            "dropped": 1},
                           {"critical_miss_rate": pytest.approx(1 / 11), "throughput_fps": 10.0, "goodput_fps": 10.0,
                            "dropped": 1}]
    table = render_markdown(r).split("## Round by round")[1]
    assert "| 2     | " in table and "9.1%, 10.0, 1 " in table and "CPU" not in table


def test_a_targets_own_figure_per_round_is_in_the_rounds_and_their_table():
    r = drive(Scripted(cpu=True), bench_entries(["sequential", "aaron"]), repeats=2, isolation=False,
              progress=False).report
    assert [x[CPU_OUTSIDE] for x in r["policies"]["aaron"]["rounds"]] == [0.5, 1.0]  # calls 2 and 4
    table = render_markdown(r).split("## Round by round")[1]
    assert "| 2     | 25.0%, 3.0, 1, 0.75 | 20.0%, 4.0, 1, 1.00 |" in table
    assert "CPU outside the model stages (ms per frame received)" in table


def test_without_isolation_and_on_failure_the_target_is_closed():
    target = Scripted()
    result = drive(target, bench_entries(["aaron"]), repeats=1, isolation=False, progress=False)
    assert len(target.calls) == 1 and target.calls[0].startswith("aaron/") and target.closed
    assert result.report["isolation"] == {} and result.alone == {}
    assert "rounds" not in result.report["policies"]["aaron"]  # one round: nothing to spread
    assert "- critical p99 / isolated p99: - (" in render_markdown(result.report)  # no ratio, not "-x"
    broken = Scripted(fail_at=3)
    with pytest.raises(RuntimeError, match="broke"):
        drive(broken, bench_entries(["sequential", "aaron"]), repeats=2, progress=False)
    assert broken.closed and len(broken.calls) == 3


class LoggedCore(CoreTarget):
    """The core bench's target for real, logging each run's policy and predictor."""

    def run(self, tasks, policy, versions, duration_s, arrivals_, predictor):
        self.log.append(([t.name for t in tasks], policy, versions, id(predictor)))
        return super().run(tasks, policy, versions, duration_s, arrivals_, predictor)


def test_the_core_target_runs_alone_solo_then_rounds_with_one_predictor_per_entry():
    opts = BenchOptions(policies=["sequential", "aaron"], duration_s=0.8, repeats=2, isolation_s=0.4,
                        lanes="cpu", progress=False)
    target = LoggedCore(WORKLOAD, opts)
    target.log = []
    result = drive(target, opts.entries(), opts.repeats, progress=False)
    runs = [(tasks, policy) for tasks, policy, _, _ in target.log]
    both = ["cls", "seg"]
    assert runs == [(["cls"], ISOLATION_POLICY), (["seg"], ISOLATION_POLICY),
                    (both, "sequential"), (both, "aaron"), (both, "sequential"), (both, "aaron")]
    assert all(v == ISOLATION_VERSIONS for _, _, v, _ in target.log[:2])
    predictor = {}
    for _, policy, _, pid in target.log[2:]:
        assert predictor.setdefault(policy, pid) == pid  # the same one in every round
    assert len(set(predictor.values())) == 2 and not {pid for *_, pid in target.log[:2]} & set(predictor.values())
    for key in ("sequential", "aaron"):
        p = result.report["policies"][key]
        assert p["duration_s"] == pytest.approx(0.8) and p["tasks"]["cls"]["done"] > 0
    assert result.report["isolation"]["seg"]["p50_ms"] > 0
