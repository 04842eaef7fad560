"""The coordinator service with real models on real lanes: frames from other threads, results
equal to the eager model, a policy switch mid-run, a failing model, a bounded stop."""
from __future__ import annotations

import gc
import math
import threading
import time

import pytest
import torch

from aaron_ros.coordinator.monitor import Monitor
from aaron_ros.coordinator.service import CoordinatorService, ServiceOptions
from aaron_ros.coordinator.timing import FramePart, coordinator_parts
from aaron_ros.coordinator.types import JobRecord, Outcome, TaskSpec
from aaron_ros.models import build_model
from aaron_ros.runtime.executor import HostWork


def _collect():
    got, lock = [], threading.Lock()

    def on_finished(rec, output):
        with lock:
            got.append((rec, output))
    return got, on_finished


def _wait(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)
    return cond()


@pytest.mark.parametrize("lane_kind", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_frames_from_threads_give_eager_equal_outputs_and_survive_a_policy_switch(lane_kind):
    svc = CoordinatorService(ServiceOptions(policy="aaron", lanes=2, device=lane_kind))
    det, det_cb = _collect()
    seg, seg_cb = _collect()
    svc.add_task(TaskSpec("det", "mobilenet_v3_small", 50, 200, "critical", "drop_oldest", 8), None, det_cb)
    svc.add_task(TaskSpec("seg", "seg_net", 50, 500, "normal", "drop_oldest", 8), None, seg_cb)  # room for all 6
    ref = {m: build_model(m) for m in ("mobilenet_v3_small", "seg_net")}
    inputs = {m: g.example_input() for m, g in ref.items()}
    weights = {next(g.model.parameters()).device.type for g in svc.graphs.values()}
    assert weights == {lane_kind}  # the models live where their lanes run
    svc.start()
    try:
        def feed(task, model, n):
            for f in range(n):
                svc.submit(task, f, inputs[model])
                time.sleep(0.02)
        threads = [threading.Thread(target=feed, args=("det", "mobilenet_v3_small", 6)),
                   threading.Thread(target=feed, args=("seg", "seg_net", 6))]
        for t in threads:
            t.start()
        time.sleep(0.05)
        svc.switch_policy("sequential")
        for t in threads:
            t.join()
        assert _wait(lambda: len(det) == 6 and len(seg) == 6)
        assert svc.policy_name == "sequential" and len(svc.lanes) == 1
    finally:
        svc.stop()
    for got, model in ((det, "mobilenet_v3_small"), (seg, "seg_net")):
        with torch.no_grad():
            expect = ref[model].run_whole(inputs[model])
        assert [r.outcome for r, _ in got] == ["done"] * 6  # nothing dropped by the switch
        for _, out in got:
            # Lanes of 1 or 2 threads, or a GPU, sum in another order.
            torch.testing.assert_close(out.cpu(), expect, rtol=1e-4, atol=1e-4)
    snap = svc.snapshot()
    assert snap["det"]["totals"]["done"] == 6 and snap["det"]["done"] == 6
    assert snap["det"]["p50_ms"] > 0 and snap["seg"]["fps"] > 0


def test_a_failing_model_is_counted_and_the_other_task_keeps_serving():
    svc = CoordinatorService(ServiceOptions(policy="priority", lanes=2))
    bad, bad_cb = _collect()
    good, good_cb = _collect()
    svc.add_task(TaskSpec("bad", "mobilenet_v3_small", 30, 500), None, bad_cb)
    svc.add_task(TaskSpec("good", "seg_net", 30, 500), None, good_cb)
    svc.start()
    try:
        ok = build_model("seg_net").example_input()
        for f in range(3):
            svc.submit("bad", f, torch.zeros(1, 5, 7, 7))  # wrong shape: the model raises
            svc.submit("good", f, ok)
            time.sleep(0.05)
        assert _wait(lambda: len(bad) == 3 and len(good) == 3)
    finally:
        svc.stop()
    assert {r.outcome for r, _ in bad} == {"failed"} and bad[0][0].error
    assert [r.outcome for r, _ in good] == ["done"] * 3
    assert svc.snapshot()["bad"]["totals"]["failed"] == 3


def test_pre_and_post_processing_run_inside_the_first_and_last_grants_and_a_failing_one_fails_the_frame():
    svc = CoordinatorService(ServiceOptions(policy="aaron", lanes=2))
    got, cb = _collect()
    graph = svc.add_task(TaskSpec("cls", "mobilenet_v3_small", 30, 500, "normal", "drop_oldest", 8), None, cb)
    traced = []
    svc.on_stage = lambda grant, seen, timing: traced.append((grant.request.job.frame, grant.request.stage, timing))
    x = graph.example_input()
    threads = []

    def post(out):
        threads.append(threading.current_thread().name)
        if len(threads) == 2:
            raise ValueError("no labels for class 7")  # a broken post-processing, on the second frame
        return out.argmax().item()
    svc.start()
    try:
        for f in range(3):
            svc.submit("cls", f, HostWork(lambda: x.clone()), HostWork(post))
            assert _wait(lambda f=f: len(got) == f + 1)
    finally:
        svc.stop()
    assert [r.outcome for r, _ in got] == ["done", "failed", "done"]
    assert "no labels for class 7" in got[1][0].error  # the cause travels with the frame
    with torch.no_grad():  # the post-processed result is the output
        assert got[0][1] == graph.run_whole(x.to(next(graph.model.parameters()).device)).argmax().item()
    assert all(name.startswith("lane-") for name in threads)  # on lanes, never on the caller's thread
    last = len(graph) - 1
    for frame in (0, 2):
        times = {stage: t for f, stage, t in traced if f == frame}
        assert sorted(times) == list(range(len(graph)))
        assert times[0].pre_s > 0 and times[last].post_s > 0  # inside the grants, timed
        assert all(t.pre_s == 0 for s, t in times.items() if s) and all(t.post_s == 0 for s, t in times.items()
                                                                        if s != last)
        assert times[last].finished - times[last].started >= times[last].post_s


def test_the_thread_an_event_happens_on_makes_the_decisions_that_follow():
    """A frame handed over is granted on the thread that hands it over, and a stage that ends on
    its lane, which starts the next stage itself: no frame waits for another thread to wake."""
    svc = CoordinatorService(ServiceOptions(policy="aaron", lanes=2))
    got, cb = _collect()
    graph = svc.add_task(TaskSpec("det", "tiny_yolo", 30, 500, "normal", "drop_oldest", 8), None, cb)
    svc.start()
    launched = []  # (stage, the thread that granted it)
    launch = svc.driver._launch

    def spy(grant):
        launched.append((grant.request.stage, threading.current_thread().name))
        launch(grant)
    svc.driver._launch = spy
    x = graph.example_input()

    def camera():
        for f in range(3):
            svc.submit("det", f, x)
            _wait(lambda f=f: len(got) == f + 1)
    try:
        thread = threading.Thread(target=camera, name="camera")
        thread.start()
        thread.join()
    finally:
        svc.stop()
    assert [r.outcome for r, _ in got] == ["done"] * 3
    assert len(graph) > 1 and [stage for stage, _ in launched] == list(range(len(graph))) * 3
    assert {name for stage, name in launched if stage == 0} == {"camera"}
    assert all(name.startswith("lane-") for stage, name in launched if stage > 0)
    assert svc.cpu_s() > 0  # counted on those threads


def test_stop_counts_unserved_frames_as_dropped_and_does_not_hang():
    svc = CoordinatorService(ServiceOptions(policy="sequential", lanes=1))
    got, cb = _collect()
    svc.add_task(TaskSpec("big", "resnet18", 100, 1000, "normal", "drop_oldest", 8), None, cb)
    svc.start()
    x = build_model("resnet18").example_input()
    for f in range(8):
        svc.submit("big", f, x)
    time.sleep(0.05)
    t0 = time.monotonic()
    svc.stop(drain_timeout_s=0.5)
    assert time.monotonic() - t0 < 10
    assert len(got) == 8  # every frame accounted for
    assert {r.outcome for r, _ in got} <= {"done", "dropped"}
    assert any(r.outcome == "dropped" for r, _ in got)


def test_a_running_service_keeps_its_models_out_of_the_collectors_sight():
    """A full collection during a run scans only what the run made (one over the loaded models took
    up to 118 ms on the reference machine, with no grant meanwhile); after stop they are collectable."""
    svc = CoordinatorService(ServiceOptions(policy="aaron", lanes=2))
    graph = svc.add_task(TaskSpec("det", "mobilenet_v3_small", 20, 500, "critical"), None)
    weight = next(graph.stages[0].module.parameters())

    def tracked(obj) -> bool:  # in one of the collector's generations
        return any(o is obj for o in gc.get_objects())

    assert tracked(weight)
    svc.start()
    try:
        assert not tracked(weight) and not tracked(graph.stages[0].module)
    finally:
        svc.stop()
    assert tracked(weight)


def test_bad_options_name_the_problem():
    with pytest.raises(ValueError, match="unknown policy 'fifo'"):
        ServiceOptions(policy="fifo")
    with pytest.raises(ValueError, match="versions"):
        ServiceOptions(versions="fast")


def test_replay_serves_timed_arrivals_on_this_thread_on_the_policys_lanes_only():
    """The core bench's way in: arrivals replayed for a duration, other tasks' skipped; records back."""
    from aaron_ros.coordinator.service import ModelSet

    models = ModelSet()
    svc = CoordinatorService(ServiceOptions(policy="sequential", versions="solo", lanes=2, switchable=False),
                             models=models)
    svc.add_task(TaskSpec("det", "mobilenet_v3_small", 20, 500, "critical", "drop_oldest", 8), None)
    x = models.graphs["mobilenet_v3_small"].example_input()
    heard = []
    svc.add_record_listener(lambda rec, stamp_ns: heard.append(rec) if stamp_ns == 0 else None)  # none given
    arrivals = [(0.0, "det"), (0.05, "other"), (0.1, "det"), (0.15, "det"), (5.0, "det")]  # the last after the end
    records = svc.replay(arrivals, 0.3, lambda task: x)
    assert [(r.task, r.frame, r.outcome) for r in records] == [("det", f, "done") for f in range(3)]
    assert heard == records and svc.grant_us() and svc.snapshot()["det"]["totals"]["done"] == 3
    assert len(svc.lanes) == 1  # sequential: one lane
    # Every stage was timed, and the coordinator's parts of a frame are back to back: release to done.
    stages = len(models.graphs["mobilenet_v3_small"])
    for r in records:
        assert [t.stage for t in r.stage_times] == list(range(stages))
        assert all(t.granted <= t.queued <= t.started <= t.finished <= t.seen and t.cpu_s > 0 for t in r.stage_times)
        parts = coordinator_parts(r)
        assert sum(p.wall_s for p in parts.values()) == pytest.approx(r.latency_s, abs=1e-9)
        assert parts[FramePart.STAGES].cpu_s > 0
    # Another service on the same models builds nothing again.
    again = CoordinatorService(ServiceOptions(policy="aaron", lanes=2, switchable=False), models=models)
    assert again.add_task(TaskSpec("det2", "mobilenet_v3_small", 20, 500), None) is models.graphs["mobilenet_v3_small"]
    # ... but not on lanes of another kind than the models live on.
    other = "cpu" if models.lane_kind == "cuda" else "cuda"
    with pytest.raises(ValueError, match=f"models live on {models.lane_kind} but the lanes are {other}"):
        CoordinatorService(ServiceOptions(device=other), models=models)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a CUDA device")
def test_cuda_lanes_without_a_device_say_so():
    from aaron_ros.coordinator.service import ModelSet

    with pytest.raises(ValueError, match="cannot live on cuda lanes: no CUDA device is available"):
        ModelSet("cuda")


def test_the_whole_runs_statistics_outlive_the_status_window():
    # The final summary of `aaron-ros run` reads these: after a pause, the window is empty but
    # the run's percentiles and misses still cover every frame (within the histogram's 0.5%).
    spec = TaskSpec("det", "tiny_yolo", rate_hz=30.0, deadline_ms=100.0)
    mon = Monitor([spec], window_s=5.0)
    for i in range(1, 101):  # latencies 1..100 ms
        mon.add(JobRecord("det", i, release=i, outcome=Outcome.DONE, finished=i + i / 1e3), now=i)
    mon.add(JobRecord("det", 101, release=101, outcome=Outcome.DONE, finished=101.25), now=101)  # late
    mon.add(JobRecord("det", 102, release=102, outcome=Outcome.DROPPED), now=102)
    snap = mon.snapshot(now=200.0)["det"]
    assert snap["done"] == 0 and math.isnan(snap["p50_ms"])  # nothing in the last 5 s
    run = snap["run"]
    assert run["p50_ms"] == pytest.approx(51, rel=0.01) and run["p99_ms"] == pytest.approx(100, rel=0.01)
    # Frames done from 1 s to 101 s, one a second: the pause after them does not lower the rate.
    assert run["miss_rate"] == pytest.approx(2 / 102) and run["fps"] == pytest.approx(1.0)
    assert run["seconds"] == pytest.approx(101)  # from the first frame's end to the last (the drop at 102)
    assert snap["totals"] == {"done": 101, "late": 1, "dropped": 1, "failed": 0}
