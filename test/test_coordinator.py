"""Scheduling rules on a deterministic simulated clock: stage times come from profile tables, so
every rule is checked exactly, without running a model."""
from __future__ import annotations

from collections import deque

import pytest

from aaron_ros.coordinator.coordinator import Coordinator
from aaron_ros.coordinator.policies import POLICIES, make_policy
from aaron_ros.coordinator.sim import simulate
from aaron_ros.coordinator.slack import TAIL_WINDOW, Margin, Tail
from aaron_ros.coordinator.types import TaskSpec
from aaron_ros.coordinator.versions import VersionChooser
from aaron_ros.kernels.bag import KernelBag
from aaron_ros.kernels.version import LevelProfile, ResourceShape, Version

STAGES = 3


def _version(model: str, stage: int, backend: str, threads: int, ms: float,
             pressure: dict | None = None) -> Version:
    prof = {c: LevelProfile(ms * f, ms * f * 1.1, 5) for c, f in
            [("isolation", 1.0), ("compute/light", 1.1), ("compute/medium", 1.3), ("compute/heavy", 1.8),
             ("memory/light", 1.1), ("memory/medium", 1.3), ("memory/heavy", 1.8),
             ("model/light", 1.2), ("model/medium", 1.5), ("model/heavy", 2.0)]}
    shape = ResourceShape(threads=threads)
    return Version(id=f"{model}.s{stage}.{backend}.t{threads}", stage=stage, backend=backend, shape=shape,
                   profiles=prof, sensitivity={"compute": 1.8, "memory": 1.8, "model": 2.0},
                   pressure=pressure or {"compute": 1.2, "memory": 1.1})


def _bag(model: str, ms: float, pressure: dict | None = None) -> KernelBag:
    versions = {s: [_version(model, s, "eager", 1, ms * 1.3, pressure),
                    _version(model, s, "onnxruntime", 1, ms, pressure),
                    _version(model, s, "onnxruntime", 2, ms * 0.6, pressure)] for s in range(STAGES)}
    return KernelBag(graph=None, versions=versions, runners={})


def _coordinator(tasks, policy: str, setting: str = "solo", lanes: int = 2, bags=None, cores: int = 2):
    bags = bags or {t.model: _bag(t.model, 5.0) for t in tasks}
    pol = make_policy(policy)
    n = pol.lanes(lanes, len(tasks))
    return Coordinator(tasks, {t.name: STAGES for t in tasks}, [f"lane{i}" for i in range(n)], pol,
                       VersionChooser(bags, setting), cores)


def _table_time(grant, co):
    """Isolation median, slowed 30% per co-running stage: a simple, exact contention model."""
    return grant.version.profiles["isolation"].p50_ms / 1e3 * (1 + 0.3 * len(co))


def _periodic(tasks, duration):
    out = []
    for t in tasks:
        k = 0
        while k / t.rate_hz < duration:
            out.append((k / t.rate_hz, t.name))
            k += 1
    return sorted(out)


CRIT = TaskSpec("det", "det_model", rate_hz=20, deadline_ms=40, criticality="critical")
SIGN = TaskSpec("sign", "sign_model", rate_hz=10, deadline_ms=200)
SEG = TaskSpec("seg", "seg_model", rate_hz=10, deadline_ms=150)


class _Watch:
    """Wraps a policy and records, for each decision, what was ready and what was granted."""

    def __init__(self, policy):
        self.policy, self.name, self.sheds_late = policy, policy.name, policy.sheds_late
        self.decisions = []

    def lanes(self, pool, tasks):
        return self.policy.lanes(pool, tasks)

    def pick(self, view):
        picks = self.policy.pick(view)
        self.decisions.append((view, picks))
        return picks


@pytest.mark.parametrize("policy", ["aaron", "priority", "elastic"])
def test_critical_stage_never_waits_for_a_normal_one(policy):
    tasks = [CRIT, SIGN, SEG]
    coord = _coordinator(tasks, policy)
    coord.policy = watch = _Watch(coord.policy)
    simulate(coord, _periodic(tasks, 2.0), 2.0, _table_time)
    assert watch.decisions
    for view, picks in watch.decisions:
        picked = {p.request.job.task.name for p in picks}
        waiting_critical = [r for r in view.requests if r.job.critical and r.job.task.name not in picked]
        granted_normal = [p for p in picks if not p.request.job.critical]
        assert not (waiting_critical and granted_normal), f"{policy}: normal granted while critical waited"


def test_aaron_orders_normal_stages_by_earliest_deadline():
    late = TaskSpec("late", "m1", rate_hz=1, deadline_ms=500)
    soon = TaskSpec("soon", "m2", rate_hz=1, deadline_ms=100)
    coord = _coordinator([late, soon], "aaron", lanes=1)
    coord.submit("late", 0, 0.0)
    coord.submit("soon", 0, 0.01)  # later release, earlier absolute deadline
    (grant,) = coord.schedule(0.01)
    assert grant.request.job.task.name == "soon"


@pytest.mark.parametrize("policy", ["aaron", "priority"])
def test_aaron_drops_a_waiting_frame_that_cannot_meet_its_deadline_before_it_starts(policy):
    coord = _coordinator([SIGN], policy, lanes=1)  # 3 stages, 3 ms each on the fastest version alone
    coord.submit("sign", 0, 0.0)  # due at 0.200: starting at 0.195 it would end at 0.204 at best
    coord.submit("sign", 1, 0.1)
    (grant,) = coord.schedule(0.195)
    if policy == "aaron":
        (dropped,) = coord.records
        assert (dropped.frame, dropped.outcome, dropped.error) == (0, "dropped", "cannot meet its deadline")
        assert dropped.started is None  # never started: its input was never prepared
        assert grant.request.job.frame == 1
        # Started, but after its first stage the other two (6 ms at best) end past its deadline (0.300).
        coord.release(grant, 0.296, 0.1)
        assert coord.schedule(0.296) == [] and not coord.pending()
        assert coord.records[-1].frame == 1 and coord.records[-1].error == "cannot meet its deadline"
    else:  # the other policies serve it late
        assert not coord.records and grant.request.job.frame == 0


def test_priority_is_deadline_monotonic():
    coord = _coordinator([SIGN, SEG], "priority", lanes=1)
    coord.submit("sign", 0, 0.0)
    coord.submit("seg", 0, 0.05)
    (grant,) = coord.schedule(0.05)
    assert grant.request.job.task.name == "seg"  # 150 ms deadline beats 200 ms


@pytest.mark.parametrize("rule, expect_frames, expect_dropped", [
    ("drop_oldest", [3, 4], [0, 1, 2]),
    ("drop_newest", [0, 1], [2, 3, 4]),
    ("keep_latest", [4], [0, 1, 2, 3]),
])
def test_overload_rules_drop_count_and_bound_the_queue(rule, expect_frames, expect_dropped):
    task = TaskSpec("t", "m", rate_hz=10, deadline_ms=100, overload=rule, queue_size=2)
    coord = _coordinator([task], "priority")
    for f in range(5):
        coord.submit("t", f, f * 0.01)
        assert len(coord.tasks["t"].queue) <= task.queue_size
    assert [j.frame for j in coord.tasks["t"].queue] == expect_frames
    assert sorted(r.frame for r in coord.records if r.outcome == "dropped") == expect_dropped
    assert {r.error for r in coord.records} == {f"queue full ({rule})"}  # each says why


def test_overloaded_run_drops_with_accounting_and_queues_stay_bounded():
    flood = TaskSpec("flood", "slow", rate_hz=200, deadline_ms=50, queue_size=3)
    coord = _coordinator([flood], "aaron", bags={"slow": _bag("slow", 20.0)})
    arrivals = _periodic([flood], 1.0)
    records = simulate(coord, arrivals, 1.0, _table_time)
    assert len(records) == len(arrivals)  # every frame accounted for
    outcomes = {o: sum(r.outcome == o for r in records) for o in ("done", "dropped", "failed")}
    assert outcomes["dropped"] > outcomes["done"] > 0


def test_sequential_uses_one_lane_and_naive_one_per_task():
    tasks = [CRIT, SIGN, SEG]
    seq, naive = _coordinator(tasks, "sequential"), _coordinator(tasks, "naive")
    assert len(seq.lanes) == 1 and len(naive.lanes) == 3
    used = set()
    simulate(naive, _periodic(tasks, 1.0), 1.0, _table_time, on_grant=lambda g, t: used.add(
        (g.request.job.task.name, g.lane)))
    assert len({lane for _, lane in used}) == 3 and len(used) == 3  # each task always on its lane
    order = []
    simulate(seq, _periodic(tasks, 1.0), 1.0, _table_time, on_grant=lambda g, t: order.append(g))
    for a, b in zip(order, order[1:]):  # one job at a time, its stages back to back
        if a.request.job is not b.request.job:
            assert a.request.stage == STAGES - 1 and b.request.stage == 0


def test_failing_model_is_counted_and_others_keep_running():
    tasks = [CRIT, SIGN]

    def time_or_fail(grant, co):
        if grant.request.job.task.name == "sign":
            raise RuntimeError("model exploded")
        return _table_time(grant, co)

    coord = _coordinator(tasks, "aaron")
    records = simulate(coord, _periodic(tasks, 1.0), 1.0, time_or_fail)
    sign = [r for r in records if r.task == "sign"]
    det = [r for r in records if r.task == "det"]
    assert sign and all(r.outcome in ("failed", "dropped") for r in sign)
    assert any("model exploded" in (r.error or "") for r in sign)
    assert sum(r.outcome == "done" for r in det) >= 0.9 * len(det)


def test_elastic_shrinks_normal_stages_to_what_critical_leaves():
    coord = _coordinator([CRIT, SIGN], "elastic")
    coord.submit("det", 0, 0.0)
    coord.submit("sign", 0, 0.0)
    grants = {g.request.job.task.name: g for g in coord.schedule(0.0)}
    assert grants["det"].version.shape.threads == 2  # full size: its fastest version
    assert grants["sign"].version.shape.threads == 1  # shrunk to what is left (at least 1)
    coord = _coordinator([SIGN], "elastic")
    coord.submit("sign", 0, 0.0)
    (alone,) = coord.schedule(0.0)
    assert alone.version.shape.threads == 2  # nothing critical running: it may use all cores


# A normal task whose waiting frame is pushed out by its next one, 5 ms on.
BG = TaskSpec("bg", "bg_model", rate_hz=200, deadline_ms=1000, overload="keep_latest", queue_size=1)


def test_aaron_sizes_a_critical_stage_by_its_slack_when_normal_work_needs_the_cores():
    """det: 3 stages of 5 ms on one thread, 3 ms on two; deadline 40 ms, margin 1.25 at first."""
    coord = _coordinator([CRIT, BG], "aaron")
    coord.submit("det", 0, 0.0)
    coord.submit("bg", 0, 0.0)
    grants = {g.request.job.task.name: g for g in coord.schedule(0.0)}
    assert grants["det"].version.shape.threads == 1  # 1.25 x 15 ms ends well before 40 ms
    assert grants["bg"].version.shape.threads == 1  # the core it left
    # Without slack: 22 ms late to start, one thread would end at 22 + 1.25 x 15 > 40 ms.
    coord = _coordinator([CRIT, BG], "aaron")
    coord.submit("det", 0, 0.0)
    coord.submit("bg", 0, 0.0)
    (late,) = coord.schedule(0.022)
    assert late.request.job.task.name == "det" and late.version.shape.threads == 2
    # Normal work that loses nothing by waiting 9 ms (a 200 ms deadline, room in its queue):
    # the critical frame keeps its latency alone.
    coord = _coordinator([CRIT, SIGN], "aaron")
    coord.submit("det", 0, 0.0)
    coord.submit("sign", 0, 0.0)
    (full,) = coord.schedule(0.0)
    assert full.request.job.task.name == "det" and full.version.shape.threads == 2
    # A queue of one, empty now, whose next two frames come before the critical frame would end at
    # full size: the first would be replaced by the second, so the critical stage leaves it a core.
    coord = _bg_served_then_det(0.0, 0.001)
    assert coord.tasks["bg"].expected == (0.005,)
    (det,) = coord.schedule(0.003)
    assert det.request.job.task.name == "det" and det.version.shape.threads == 1


def _bg_served_then_det(release: float, stage_s: float, coord: Coordinator | None = None,
                        det_age: float = 0.0) -> Coordinator:
    """aaron (`coord`, or a new one with det and BG) with bg's frame released at `release` and
    served alone (each stage `stage_s`), its queue of one empty again, and a det frame just
    arrived, released `det_age` before."""
    if coord is None:
        coord = _coordinator([CRIT, BG], "aaron")
    coord.submit("bg", 0, release)
    for stage in range(STAGES):
        (bg,) = coord.schedule(release + stage_s * stage)
        coord.release(bg, release + stage_s * (stage + 1), stage_s)
    coord.submit("det", 0, release + stage_s * STAGES - det_age)
    assert coord.records[-1].outcome == "done" and coord.tasks["bg"].queue == deque()
    return coord


def test_aaron_weighs_the_loss_of_a_normal_frame_at_the_tail_of_the_critical_stages():
    """det at full size: 3 stages of about 3 ms (p95 10% more). bg's queue of one is empty and its
    next two frames come 4.1 and 9.1 ms on: at the median the frame ends before the second and
    loses nothing, at the p95 after it and the first bg frame is replaced; so det leaves bg a core."""
    coord = _bg_served_then_det(0.0091, 0.0001)
    assert coord.tasks["bg"].expected == (pytest.approx(0.0141),)
    (det,) = coord.schedule(0.010)
    assert det.request.job.task.name == "det" and det.version.shape.threads == 1


def test_the_learned_margin_widens_after_a_miss_and_changes_the_size():
    margin = Margin()
    start = margin.factor
    margin.observe(0.5)  # room to spare: narrows a little
    assert margin.factor < start
    narrow = margin.factor
    margin.observe(0.95)  # a near miss: widens a little
    assert narrow < margin.factor < start * 1.5
    margin.observe(None)  # a miss: widens sharply
    assert margin.factor > 1.5 * narrow

    def size_15ms_late(coord, release):
        coord.submit("det", 0, release)
        coord.submit("bg", 0, release)
        grants = coord.schedule(release + 0.015)
        return next(g for g in grants if g.request.job.critical).version.shape.threads

    coord = _coordinator([CRIT, BG], "aaron")
    assert size_15ms_late(coord, 0.0) == 1  # 15 + 1.25 x 15 ms ends by 40
    coord = _coordinator([CRIT, BG], "aaron")
    coord.submit("det", 9, 0.0)
    (g,) = coord.schedule(0.0)
    for stage in range(STAGES):  # the frame ends at 45 ms, past its 40 ms deadline
        coord.release(g, 0.015 * (stage + 1), 0.015)
        g = next(iter(coord.schedule(0.015 * (stage + 1))), g)
    assert coord.records[-1].latency_s > CRIT.deadline_ms / 1e3
    assert coord.margins["det"].factor == pytest.approx(1.25 * 1.5)
    assert size_15ms_late(coord, 0.060) == 2  # the wider margin no longer fits one thread


def test_the_learned_tail_is_the_95th_percentile_of_the_latest_stages_and_never_below_the_profile():
    tail = Tail()
    tail.observe(2.0)  # the first stage counts at once
    assert tail.factor == 2.0
    for _ in range(TAIL_WINDOW):
        tail.observe(0.5)  # faster than profiled: the profile's own tail still stands
    assert tail.factor == 1.0
    for k in range(1000):  # ratios spread evenly over 1..3: their 95th percentile is 2.9
        tail.observe(1 + 2 * ((k * 0.618034) % 1))
    assert 2.7 < tail.factor < 3.0
    for _ in range(TAIL_WINDOW):  # the machine quietened: the window forgets the old ratios
        tail.observe(1.2)
    assert tail.factor == 1.2


def test_a_live_tail_longer_than_profiled_sizes_the_critical_stage_down_where_it_has_room():
    """bg (150 Hz, a queue of one) is served; det arrives. At det's profiled tail at full size
    (3 stages of 3.3 ms) it ends before bg's second frame, 13.3 ms on, and bg loses nothing. Once
    stages have been seen running at twice their profiled tail, it would not: det leaves bg a core
    where one thread, at twice its own tail, still ends by det's deadline."""
    bg = TaskSpec("bg", "bg_model", rate_hz=150, deadline_ms=1000, overload="keep_latest", queue_size=1)

    def det_after_bg(coord, t, det_age=0.0):
        _bg_served_then_det(t, 0.0001, coord, det_age)
        (det,) = coord.schedule(t + 0.0003)
        threads, now = det.version.shape.threads, t + 0.0003
        while det is not None:  # the frame runs to its end
            now += 0.005
            coord.release(det, now, 0.005)
            det = next(iter(coord.schedule(now)), None)
        return threads

    assert det_after_bg(_coordinator([CRIT, bg], "aaron"), 0.0) == 2
    coord = _coordinator([CRIT, bg, SIGN, SEG], "aaron")
    for frame in range(4):  # det alone, each stage twice its profiled 95th percentile (3.3 ms)
        t = 0.05 * frame
        coord.submit("det", frame, t)
        for stage in range(STAGES):
            (g,) = coord.schedule(t + 0.0066 * stage)
            assert g.version.shape.threads == 2
            coord.release(g, t + 0.0066 * (stage + 1), 0.0066)
    coord.submit("sign", 0, 0.2)
    coord.submit("seg", 0, 0.2)
    for stage in range(STAGES):  # one thread each; seg's stage ends alone at twice its tail (5.5 ms)
        t = 0.2 + 0.011 * stage
        sign, seg = sorted(coord.schedule(t), key=lambda g: g.request.job.task.name)
        assert sign.version.shape.threads == seg.version.shape.threads == 1
        coord.release(sign, t + 0.005, 0.005)
        coord.release(seg, t + 0.011, 0.011)
    assert coord.tails[2].factor > 1.4 and coord.tails[1].factor == pytest.approx(2.0)
    assert det_after_bg(coord, 0.25) == 1  # its margin x 2 x about 16 ms ends by the 40 ms deadline
    # A det frame 20 ms old has 20 ms left: one thread fits at the margin (about 1.1 x 16 ms), not
    # at twice its tail, so bg's frame, lost only in the live tail, is not worth the risk.
    assert det_after_bg(coord, 0.30, det_age=0.020) == 2


def test_normal_stages_grow_into_cores_a_critical_stage_released():
    bags = {"det_model": _bag("det_model", 5.0), "bg_model": _bag("bg_model", 5.0)}
    coord = Coordinator([CRIT, BG], {"det": 1, "bg": STAGES}, ["lane0", "lane1"], make_policy("aaron"),
                        VersionChooser(bags, "solo"), cores=2)
    coord.submit("det", 0, 0.0)
    coord.submit("bg", 0, 0.0)
    grants = {g.request.job.task.name: g for g in coord.schedule(0.0)}
    assert grants["det"].version.shape.threads == 1 and grants["bg"].version.shape.threads == 1
    coord.release(grants["det"], 0.005, 0.005)  # det's frame ends: both cores are free again
    coord.release(grants["bg"], 0.006, 0.006)
    (grown,) = coord.schedule(0.006)
    assert grown.request.stage == 1 and grown.version.shape.threads == 2
    # Two normal stages ready on two free cores share them, one thread each.
    coord = _coordinator([SIGN, SEG], "aaron")
    coord.submit("sign", 0, 0.0)
    coord.submit("seg", 0, 0.0)
    assert [g.version.shape.threads for g in coord.schedule(0.0)] == [1, 1]


def test_aaron_co_schedules_away_from_a_pressed_channel():
    mem, comp = {"compute": 1.05, "memory": 1.6}, {"compute": 1.6, "memory": 1.05}
    a = TaskSpec("a_mem", "mem_model", rate_hz=1, deadline_ms=100)  # earlier deadline
    b = TaskSpec("b_comp", "comp_model", rate_hz=1, deadline_ms=300)
    c = TaskSpec("c_mem", "mem_model2", rate_hz=1, deadline_ms=1000)
    bags = {"mem_model": _bag("mem_model", 5, mem), "comp_model": _bag("comp_model", 5, comp),
            "mem_model2": _bag("mem_model2", 5, mem)}
    coord = _coordinator([a, b, c], "aaron", lanes=2, bags=bags, cores=4)
    coord.submit("c_mem", 0, 0.0)
    first = coord.schedule(0.0)  # c runs alone: memory channel pressed
    assert [g.request.job.task.name for g in first] == ["c_mem"]
    coord.submit("a_mem", 0, 0.001)
    coord.submit("b_comp", 0, 0.001)
    (second,) = coord.schedule(0.001)
    assert second.request.job.task.name == "b_comp"  # despite a's earlier deadline


def test_aaron_loses_no_frame_to_a_pressed_channel():
    """The co-scheduling preference goes only as far as the frame it passes over can wait: a
    frame that would be pushed out of its queue while the other stage ran goes first."""
    mem, comp = {"compute": 1.05, "memory": 1.6}, {"compute": 1.6, "memory": 1.05}
    a = TaskSpec("a_mem", "mem_model", rate_hz=30, deadline_ms=1000, queue_size=2)
    b = TaskSpec("b_comp", "comp_model", rate_hz=1, deadline_ms=2000)
    c = TaskSpec("c_mem", "mem_model2", rate_hz=1, deadline_ms=3000)
    bags = {"mem_model": _bag("mem_model", 5, mem), "comp_model": _bag("comp_model", 5, comp),
            "mem_model2": _bag("mem_model2", 5, mem)}

    def second_pick(now: float) -> str:
        coord = _coordinator([a, b, c], "aaron", lanes=2, bags=bags, cores=4)
        coord.submit("c_mem", 0, 0.0)
        assert [g.request.job.task.name for g in coord.schedule(0.0)] == ["c_mem"]  # memory pressed
        coord.submit("a_mem", 0, 0.0)
        coord.submit("a_mem", 1, 1 / 30)  # its queue of 2 is full; the next frame is due at 2/30 s
        coord.submit("b_comp", 0, 1 / 30)
        (g,) = coord.schedule(now)
        return g.request.job.task.name

    assert second_pick(0.034) == "b_comp"  # b's stage ends before a's next frame: a can wait
    assert second_pick(0.064) == "a_mem"  # it would not: a's oldest frame would be pushed out


def test_the_earliest_deadline_goes_after_a_frame_it_would_push_out_of_its_queue():
    """One core. b's frame came first (the earlier deadline); a's (100 Hz, a queue of one) must
    start before its next frame, 10 ms on. A b stage that would end by then goes first; one that
    would not goes after a's."""
    a = TaskSpec("a", "a_model", rate_hz=100, deadline_ms=1000, overload="keep_latest", queue_size=1)
    b = TaskSpec("b", "b_model", rate_hz=1, deadline_ms=1000)

    def first_of(b_stage_ms: float) -> str:
        bags = {"a_model": _bag("a_model", 2.0), "b_model": _bag("b_model", b_stage_ms)}
        coord = _coordinator([a, b], "aaron", lanes=1, bags=bags, cores=1)
        coord.submit("b", 0, 0.0)
        coord.submit("a", 0, 0.001)
        (g,) = coord.schedule(0.0015)
        return g.request.job.task.name

    assert first_of(8.0) == "b"  # ends at 9.5 ms: a's frame still starts before its next
    assert first_of(12.0) == "a"  # ends at 13.5 ms: a's frame would have been replaced


def _critical_frame(coord, frame: int, release: float) -> float:
    """Release det's frame and run it to its end on the only lane, 0.5 ms a stage; the end time."""
    coord.submit("det", frame, release)
    t = release
    while coord.tasks["det"].current is not None or coord.tasks["det"].queue:
        (g,) = coord.schedule(t)
        t += 0.0005
        coord.release(g, t, 0.0005)
    return t


def test_aaron_keeps_the_last_lane_for_a_critical_frame_due():
    crit = TaskSpec("det", "det_model", rate_hz=100, deadline_ms=10, criticality="critical")
    slow = TaskSpec("seg", "seg_model", rate_hz=1, deadline_ms=1000)
    bags = {"det_model": _bag("det_model", 1.0), "seg_model": _bag("seg_model", 50.0)}
    for policy, held in (("aaron", True), ("priority", False)):
        coord = _coordinator([crit, slow], policy, lanes=1, bags=bags)
        t = _critical_frame(coord, 0, 0.0)
        coord.submit("seg", 0, t)  # det's next frame is due at 0.010, long before seg's stage ends
        grants = coord.schedule(t)
        assert (grants == []) is held, policy


def test_aaron_holds_back_no_stage_of_unknown_time():
    """Without a kernel bag a stage's versions were never profiled: its time is unknown, and it
    is not held for a critical frame due (holding it held the normal tasks of a GPU run to a
    quarter of their rate)."""
    crit = TaskSpec("det", "det_model", rate_hz=100, deadline_ms=10, criticality="critical")
    slow = TaskSpec("seg", "seg_model", rate_hz=1, deadline_ms=1000)
    unprofiled = {s: [Version(id=f"seg_model.s{s}.eager.t1", stage=s, backend="eager", shape=ResourceShape())]
                  for s in range(STAGES)}
    bags = {"det_model": _bag("det_model", 1.0), "seg_model": KernelBag(None, unprofiled, {})}
    coord = _coordinator([crit, slow], "aaron", lanes=1, bags=bags)
    t = _critical_frame(coord, 0, 0.0)
    coord.submit("seg", 0, t)
    assert [g.request.job.task.name for g in coord.schedule(t)] == ["seg"]


def test_aaron_expects_a_critical_frame_after_the_gaps_it_has_seen():
    """A 30 Hz camera rate-limited to 20 Hz gives gaps of 33 and 67 ms, not 50: a normal stage
    that ends before the frame on the long gap runs, and so does one the frame can wait for (the
    blocking bound: the frame's 1.8 ms of stages, with its margin, still end by its deadline); a
    longer one is held until that frame."""
    crit = TaskSpec("det", "det_model", rate_hz=20, deadline_ms=50, criticality="critical")
    seg = TaskSpec("seg", "seg_model", rate_hz=1, deadline_ms=1000)
    # The fastest version takes 0.6x the bag's ms: 0.173 + 0.060 + 1.25 x 0.0018 ends before 0.25.
    for stage_ms, held in ((20.0, False), (60.0, False), (90.0, True)):
        bags = {"det_model": _bag("det_model", 1.0), "seg_model": _bag("seg_model", stage_ms / 0.6)}
        coord = _coordinator([crit, seg], "aaron", lanes=1, bags=bags)
        for f, release in enumerate((0.0, 0.033, 0.1, 0.133)):
            _critical_frame(coord, f, release)
        t = 0.133 + 0.04  # the short gap's frame would have come at 0.166: the next is due at 0.2
        coord.submit("seg", 0, t)
        grants = coord.schedule(t)
        assert (grants == []) is held, stage_ms
        assert coord.recheck_at == (pytest.approx(0.2 + 0.005) if held else None)  # decide again when it is late


def test_a_repeating_pattern_of_gaps_says_which_comes_next():
    coord = _coordinator([CRIT], "aaron")
    for f, release in enumerate((0.0, 0.033, 0.1)):  # 33, 67: no kind has come twice yet
        coord.submit("det", f, release)
    assert coord.tasks["det"].next_releases() == (pytest.approx(0.133), pytest.approx(0.167))
    coord.submit("det", 3, 0.133)  # 33 again: last time a 67 followed it
    assert coord.tasks["det"].next_releases() == (pytest.approx(0.2),)
    coord.submit("det", 4, 0.2)  # and a 33 followed the 67
    assert coord.tasks["det"].next_releases() == (pytest.approx(0.233),)


def test_jitter_around_one_rate_is_one_kind_of_gap():
    coord = _coordinator([CRIT], "aaron")
    for f, release in enumerate((0.0, 0.045, 0.1, 0.148, 0.2)):  # 50 ms, give or take 5
        coord.submit("det", f, release)
    assert coord.tasks["det"].next_releases() == (pytest.approx(0.25),)  # one period on, not the shortest gap


def test_aaron_never_squeezes_a_full_size_critical_stage():
    """While a critical stage holds every core, no normal stage starts beside it (priority does)."""
    tasks = [CRIT, SIGN, SEG]
    for policy, squeezes in (("aaron", False), ("priority", True)):
        coord = _coordinator(tasks, policy)
        seen = []

        def on_grant(grant, now, coord=coord, seen=seen):
            running = coord.running_grants()
            full_critical = any(g.request.job.critical and g.version.shape.threads >= coord.cores
                                for g in running)
            seen.append(full_critical and any(not g.request.job.critical for g in running))

        simulate(coord, _periodic(tasks, 2.0), 2.0, _table_time, on_grant)
        assert any(seen) is squeezes, policy


def test_policy_switch_keeps_queued_and_running_frames():
    coord = _coordinator([CRIT, SIGN], "aaron")
    for f in range(2):
        coord.submit("det", f, 0.0)
        coord.submit("sign", f, 0.0)
    running = coord.schedule(0.0)
    seq = make_policy("sequential")
    coord.set_policy(seq, coord.lanes[:1])
    for g in running:
        coord.release(g, 0.01, 0.01)
    t = 0.01
    while coord.pending():
        grants = coord.schedule(t)
        assert len(coord.running_grants()) <= 1  # sequential: one lane from now on
        t += 0.01
        for g in grants:
            coord.release(g, t, 0.01)
    assert not [r for r in coord.records if r.outcome != "done"]
    assert len(coord.records) == 4  # every frame served, none dropped by the switch


@pytest.mark.parametrize("setting, backend, threads", [("eager", "eager", 1), ("solo", "onnxruntime", 2)])
def test_version_settings(setting, backend, threads):
    coord = _coordinator([SIGN], "priority", setting=setting)
    coord.submit("sign", 0, 0.0)
    (g,) = coord.schedule(0.0)
    assert (g.version.backend, g.version.shape.threads) == (backend, threads)


def _version_slowing(threads: int, ms: float, light: float, medium: float, heavy: float) -> Version:
    """A version whose profiles slow by these factors at each level, under every kind."""
    factors = {"isolation": 1.0} | {f"{k}/{lvl}": f for k in ("compute", "memory", "model")
                                    for lvl, f in (("light", light), ("medium", medium), ("heavy", heavy))}
    return Version(id=f"m.s0.onnxruntime.t{threads}", stage=0, backend="onnxruntime",
                   shape=ResourceShape(threads=threads),
                   profiles={c: LevelProfile(ms * f, ms * f * 1.1, 5) for c, f in factors.items()},
                   sensitivity=dict.fromkeys(("compute", "memory", "model"), heavy),
                   pressure={"compute": 1.2, "memory": 1.1})


def test_adaptive_prefers_a_one_thread_version_beside_busy_co_runners():
    # As measured on CPUs: two threads win alone and collapse beside busy lanes; one thread
    # barely notices them.
    one = _version_slowing(1, 5.0, 1.05, 1.1, 1.3)
    two = _version_slowing(2, 3.0, 1.5, 2.5, 4.0)
    chooser = VersionChooser({"m": KernelBag(graph=None, versions={0: [one, two]}, runners={})}, "adaptive")
    assert chooser.choose("m", 0, []) is two
    busy = [_version("x", 0, "eager", 2, 10.0)] * 2
    beside = chooser.choose("m", 0, busy)
    assert beside is one and beside.shape.threads == 1
    assert chooser.predict_ms(one, busy) < chooser.predict_ms(two, busy)
    # solo keeps the isolation winner whatever runs beside it.
    assert VersionChooser(chooser.bags, "solo").choose("m", 0, busy) is two


def test_every_policy_is_registered_and_unknown_is_a_clear_error():
    assert set(POLICIES) == {"sequential", "naive", "priority", "elastic", "aaron"}
    with pytest.raises(ValueError, match="unknown policy 'fifo'"):
        make_policy("fifo")


def test_grant_overhead_is_measured():
    tasks = [CRIT, SIGN, SEG]
    coord = _coordinator(tasks, "aaron", setting="adaptive")
    simulate(coord, _periodic(tasks, 1.0), 1.0, _table_time)
    assert coord.grant_us and all(us > 0 for us in coord.grant_us)


@pytest.mark.parametrize("two_thread_ms, side_by_side, grows", [
    (2.6, 1.5, True),  # two threads nearly 2x, one slows 1.5x beside another: one at a time
    (4.5, 1.1, False),  # two threads barely help, side by side costs little: split the cores
])
def test_normal_stages_split_the_cores_only_when_side_by_side_gets_through_them_sooner(
        two_thread_ms, side_by_side, grows):
    def bag(model):
        one = _version_slowing(1, 5.0, side_by_side, side_by_side, side_by_side)
        two = _version_slowing(2, two_thread_ms, side_by_side, side_by_side, side_by_side)
        return KernelBag(graph=None, versions={s: [one, two] for s in range(STAGES)}, runners={})

    coord = _coordinator([SIGN, SEG], "aaron", bags={"sign_model": bag("sign_model"), "seg_model": bag("seg_model")})
    coord.submit("sign", 0, 0.0)
    coord.submit("seg", 0, 0.0)
    grants = coord.schedule(0.0)
    if grows:  # the earliest deadline first, on both cores; the other waits for the next boundary
        assert [(g.request.job.task.name, g.version.shape.threads) for g in grants] == [("seg", 2)]
    else:
        assert [g.version.shape.threads for g in grants] == [1, 1]


def test_a_changed_task_rule_and_deadline_hold_for_frames_from_then_on():
    import dataclasses

    coord = _coordinator([SIGN], "aaron")
    coord.submit("sign", 0, 0.0)
    coord.update_task(dataclasses.replace(SIGN, deadline_ms=SIGN.deadline_ms * 2, overload="keep_latest"))
    coord.submit("sign", 1, 0.0)  # keep_latest now: the waiting frame 0 is pushed out
    assert [(r.frame, r.outcome) for r in coord.records] == [(0, "dropped")]
    (waiting,) = coord.tasks["sign"].queue
    assert waiting.deadline == SIGN.deadline_ms * 2 / 1e3
