"""Lanes and the stage executor, on CPU lanes; CUDA lanes where a GPU is present."""
from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from aaron_ros.models import Branches, wrap
from aaron_ros.runtime.executor import HostWork, run_graph, run_stage, submit_stage
from aaron_ros.runtime.lanes import Lane, LanePool, LaneSpec, uniform_specs

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _branchy_graph():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        Branches(nn.Conv2d(8, 4, 1), nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.ReLU()),
                 nn.AvgPool2d(3, stride=1, padding=1)),
        nn.Conv2d(16, 2, 1),
    )
    return wrap(model, "branchy", (3, 16, 16))


def test_cpu_lane_has_its_own_thread_budget():
    with LanePool([LaneSpec("a", threads=1), LaneSpec("b", threads=2)]) as pool:
        seen = {name: pool[name].run(torch.get_num_threads).output for name in ("a", "b")}
    assert seen == {"a": 1, "b": 2}


def test_lane_runs_work_in_order_on_one_thread():
    order, threads = [], set()

    def work(i):
        order.append(i)
        threads.add(threading.get_ident())
        return i * i

    lane = Lane(LaneSpec("solo"))
    try:
        futures = [lane.submit(work, i) for i in range(20)]
        runs = [f.result() for f in futures]
    finally:
        lane.close()
    assert order == list(range(20))
    assert len(threads) == 1
    assert [r.output for r in runs] == [i * i for i in range(20)]
    assert all(r.seconds >= 0 and r.finished >= r.started and r.lane == "solo" for r in runs)


def test_lane_errors_reach_the_caller_and_lane_keeps_serving():
    lane = Lane(LaneSpec("x"))
    try:
        with pytest.raises(ZeroDivisionError):
            lane.run(lambda: 1 / 0)
        assert lane.run(lambda: 7).output == 7
    finally:
        lane.close()
    with pytest.raises(RuntimeError, match="closed"):
        lane.submit(lambda: 1)


def test_bad_lane_specs_are_rejected():
    with pytest.raises(ValueError, match="kind"):
        LaneSpec("a", kind="tpu")
    with pytest.raises(ValueError, match="threads"):
        LaneSpec("a", threads=0)
    with pytest.raises(ValueError, match="sms"):
        LaneSpec("a", kind="cpu", sms=8)
    with pytest.raises(ValueError, match="duplicate"):
        LanePool([LaneSpec("a"), LaneSpec("a")])
    with pytest.raises(KeyError, match="no lane named"):
        with LanePool([LaneSpec("a")]) as pool:
            pool["b"]


def test_uniform_specs_share_cores():
    specs = uniform_specs(2, kind="cpu", threads=None)
    assert [s.name for s in specs] == ["cpu0", "cpu1"]
    assert all(s.threads >= 1 for s in specs)
    with pytest.raises(ValueError, match="priorities"):
        uniform_specs(2, kind="cpu", priorities=[0])


def test_stage_by_stage_on_a_lane_matches_the_whole_model():
    graph = _branchy_graph()
    x = torch.randn(1, 3, 16, 16)
    with LanePool(uniform_specs(1, kind="cpu")) as pool:
        runs = run_graph(graph, x, next(iter(pool)))
    assert [r.stage for r in runs] == list(range(len(graph)))
    torch.testing.assert_close(runs[-1].output, graph.run_whole(x))


def test_host_work_runs_on_the_lane_inside_the_stage_with_its_time_kept_apart():
    graph = _branchy_graph()
    x = torch.randn(1, 3, 16, 16)
    ran_on = []
    prepared = HostWork(lambda: ran_on.append(threading.current_thread().name) or x * 1.0)
    finish = HostWork(lambda out: ran_on.append(threading.current_thread().name) or out.sum())
    with LanePool(uniform_specs(1, kind="cpu")) as pool:
        lane = next(iter(pool))
        run = submit_stage(graph.stages[0], prepared, lane, then=finish).result()
    assert len(ran_on) == 2 and all(name.startswith(f"lane-{lane.name}") for name in ran_on)  # the lane's thread
    torch.testing.assert_close(run.output, graph.stages[0](x).sum())  # made, run, then finished
    # Their own times are kept apart, and the stage's lane run includes them.
    assert run.pre_s == prepared.seconds > 0 and run.post_s == finish.seconds > 0
    assert prepared.seconds + finish.seconds <= run.seconds and 0 <= prepared.cpu_s


def test_branch_group_split_over_lanes_matches_one_lane():
    graph = _branchy_graph()
    stage = next(s for s in graph.stages if s.is_branch_group)
    x = torch.randn(1, 8, 16, 16)
    with LanePool(uniform_specs(3, kind="cpu", threads=1)) as pool:
        lanes = list(pool)
        whole = run_stage(stage, x, lanes[0])
        split = run_stage(stage, x, lanes[0], branch_lanes=lanes)
    assert split.lanes == ("cpu0", "cpu1", "cpu2")
    assert whole.lanes == ("cpu0",)
    torch.testing.assert_close(split.output, whole.output)
    torch.testing.assert_close(whole.output, stage(x))


def test_failing_branch_fails_the_stage():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("branch exploded")

    graph = wrap(nn.Sequential(Branches(nn.Identity(), Boom())), "boom", (1, 2, 2))
    with LanePool(uniform_specs(2, kind="cpu", threads=1)) as pool:
        with pytest.raises(RuntimeError, match="branch exploded"):
            run_stage(graph.stages[0], torch.zeros(1, 1, 2, 2), next(iter(pool)), branch_lanes=list(pool))


@needs_cuda
def test_cuda_lanes_with_priorities_match_cpu():
    graph = _branchy_graph()
    x = torch.randn(1, 3, 16, 16)
    y = torch.randn(1, 8, 16, 16)
    stage = next(s for s in graph.stages if s.is_branch_group)
    ref, ref_stage = graph.run_whole(x), stage(y)
    graph.model.cuda()
    specs = [LaneSpec("hi", kind="cuda", priority=-1), LaneSpec("lo", kind="cuda", priority=0)]
    with LanePool(specs) as pool:
        # Every CUDA device offers at least priorities 0 and -1.
        assert pool["hi"].stream.priority < pool["lo"].stream.priority
        runs = run_graph(graph, x, pool["hi"])
        split = run_stage(stage, y, pool["lo"], branch_lanes=list(pool))
    assert runs[-1].output.is_cuda and all(r.seconds > 0 for r in runs)
    assert split.lanes == ("hi", "lo")
    torch.testing.assert_close(runs[-1].output.cpu(), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(split.output.cpu(), ref_stage, rtol=1e-4, atol=1e-4)
