"""The policy benchmark over the ROS 2 system, for real: a small bag replayed over DDS into the
container once per policy, each task alone first; the report's structure, every frame of the bag
accounted for, end-to-end latencies heard by the monitor. No timing assertions."""
from __future__ import annotations

import gc
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from aaron_ros.cli import main  # noqa: E402
from aaron_ros.common.machine import cpu_text, machine_info  # noqa: E402
from aaron_ros.coordinator.service import CoordinatorService  # noqa: E402
from aaron_ros.coordinator.timing import FramePart, PartTime  # noqa: E402
from aaron_ros.coordinator.types import Outcome  # noqa: E402
from aaron_ros.msg import CoordinatorStatus, TaskStatus  # noqa: E402
from aaron_ros.ros import domain as domain_module  # noqa: E402
from aaron_ros.ros.bench import RosBenchOptions, headline_text  # noqa: E402
from aaron_ros.ros.bench import system as system_module  # noqa: E402
from aaron_ros.ros.bench.monitor import FrameTiming, SystemClient  # noqa: E402
from aaron_ros.ros.bench.playback import PLAYED, CameraProcess, Played, parse_played  # noqa: E402
from aaron_ros.ros.bench.report import render_e2e_markdown, stall_lines  # noqa: E402
from aaron_ros.ros.bench.system import BenchSystem, DomainShared, single_component_config  # noqa: E402
from aaron_ros.ros.bench.target import (  # noqa: E402
    PRIVATE_DOMAINS,
    STALL_MS,
    TAIL_SHARE,
    RosTarget,
    bench_domain,
    delivery_stalls,
    private_domain,
)
from aaron_ros.ros.config import load_config  # noqa: E402
from aaron_ros.ros.container import UP  # noqa: E402
from aaron_ros.ros.coordinator_node import STATUS_TOPIC  # noqa: E402
from aaron_ros.ros.domain import DEFAULT_EPHEMERAL, discovery_port, domain_risk, domains_in_use  # noqa: E402
from aaron_ros.ros.record import sample_frames, write_image_bag  # noqa: E402

FRAMES = 20  # 2 s at 10 fps
POLICIES = ["sequential", "aaron"]
TASKS = ["classify", "segment"]


def _config(tmp: Path) -> Path:
    """Two small models on the bag's topic; an empty kernel_bag_dir, so eager versions."""
    (tmp / "no_bags").mkdir()
    params = {
        # Relative, as the shipped files: in the root namespace, where the bag's /cam/image is.
        "/**": {"input_topic": "cam/image", "kernel_bag_dir": str(tmp / "no_bags")},
        "aaron_container": {"components": TASKS},
        "aaron_coordinator": {"policy": "naive"},
        "classify": {"model": "mobilenet_v3_small", "deadline_ms": 300.0, "criticality": "critical"},
        "segment": {"model": "seg_net", "deadline_ms": 500.0, "max_rate_hz": 5.0},  # half the frames
    }
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump({node: {"ros__parameters": p} for node, p in params.items()}))
    return path


def _built_here(*args, **kwargs):
    raise AssertionError("the bench built a coordinator in its own process")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ros_bench")
    bag = tmp / "cam"
    write_image_bag(bag, sample_frames(width=160, height=120, fps=10.0, seconds=2.0), topic="/cam/image",
                    progress=False)
    cfg, out = _config(tmp), tmp / "out"
    collecting: list[bool] = []  # whether this process's garbage collector could run as each result was heard
    with_mask: list[bool] = []  # whether each segmentation result heard pointed to its mask
    masks: list[str] = []  # the task of each mask heard
    on_result, on_mask = SystemClient._on_result, SystemClient._on_mask

    def heard(self, task, msg, *args):
        collecting.append(gc.isenabled())
        if task == "segment":
            with_mask.append(bool(msg.mask_topic))
        on_result(self, task, msg, *args)

    def heard_mask(self, task):
        masks.append(task)
        on_mask(self, task)

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ROS_DOMAIN_ID", raising=False)  # domains of the bench's own, apart from conftest's
        # An injected fault: the bench must reach the container only from outside, so no
        # coordinator may be built in this process.
        mp.setattr(CoordinatorService, "__init__", _built_here)
        mp.setattr(SystemClient, "_on_result", heard)
        mp.setattr(SystemClient, "_on_mask", heard_mask)
        rc = main(["bench", "--bag", str(bag), "--config", str(cfg), "--policies", ",".join(POLICIES),
                   "--repeats", "1", "--out", str(out), "--no-progress"])
    assert rc == 0
    return SimpleNamespace(out=out, cfg=cfg, report=json.loads((out / "report.json").read_text()),
                           e2e=json.loads((out / "e2e.json").read_text()), collecting=collecting,
                           with_mask=with_mask, masks=masks)


def test_the_report_has_the_core_bench_keys_and_end_to_end_ones(bench):
    r = bench.report
    assert list(r["policies"]) == POLICIES
    assert [t["name"] for t in r["workload"]["tasks"]] == TASKS
    assert r["workload"]["file"] == "bench.yaml" and r["machine"] and r["versions"]["aaron_ros"]
    # The camera gives 10 fps: a task is fed at that rate at most.
    assert [t["rate_hz"] for t in r["workload"]["tasks"]] == [10.0, 5.0]
    for key in POLICIES:
        p = r["policies"][key]
        for k in ("throughput_fps", "grant_us_p50", "grant_us_p99", "critical_miss_rate", "critical_p99_ms",
                  "e2e_p50_ms", "e2e_p99_ms", "transport_p50_ms", "transport_p99_ms", "critical_e2e_p99_ms"):
            assert k in p, k
        assert p["throughput_fps"] > 0 and p["grants"] > 0
        for t in TASKS:
            m = p["tasks"][t]
            for k in ("p50_ms", "p95_ms", "p99_ms", "miss_rate", "fps", "dropped", "e2e_p50_ms", "e2e_p99_ms",
                      "transport_p50_ms", "transport_p99_ms", "input_delay_p50_ms"):
                assert k in m, (key, t, k)
            assert m["done"] > 0 and m["e2e_p50_ms"] is not None
    for t in TASKS:
        iso = r["isolation"][t]
        assert iso["p50_ms"] > 0 and iso["p99_ms"] >= iso["p50_ms"] and iso["e2e_p99_ms"] >= iso["p99_ms"]
    assert r["settings"]["bag_frames"] == FRAMES and r["settings"]["repeats"] == 1
    bags = r["settings"]["kernel_bags"]  # an empty kernel_bag_dir: eager versions, with the reason
    assert set(bags) == {"mobilenet_v3_small", "seg_net"} and not any(b.startswith("kernel bag") for b in bags.values())


def test_every_frame_of_the_bag_is_accounted_for_per_policy(bench):
    for key in POLICIES:
        for t in TASKS:
            m = bench.report["policies"][key]["tasks"][t]
            # The bag after a lead-in of 1 s (the CLI's default), which no figure but the CPU counts.
            assert m["frames"] == FRAMES and m["lead_in"] == 10, (key, t)
            assert m["received_play"] >= m["received"] + 5, (key, t, m)  # lead-in frames were received too
            # Every frame a component submitted ended in a coordinator record ...
            assert m["released"] == m["done"] + m["dropped"] + m["failed"]
            assert m["released"] == m["received"] - m["rate_limited"] - m["rejected"], (key, t, m)
            # ... and every frame the player published is one of these.
            assert (m["done"] + m["dropped"] + m["failed"] + m["rate_limited"] + m["rejected"] + m["lost"]
                    == FRAMES), (key, t, m)
            # Every frame ended within the replay, none was waited out.
            assert m["unsettled"] == 0 and m["rejected"] == 0 and 0 <= m["dropped_too_late"] <= m["dropped"]
            # Every finished frame was published and heard by the monitor.
            assert m["results"] == m["done"] == m["e2e_samples"], (key, t, m)
        seg = bench.report["policies"][key]["tasks"]["segment"]
        assert seg["rate_limited"] > 0  # 5 Hz of a 10 fps camera


def test_end_to_end_covers_the_node_latency(bench):
    for key in POLICIES:
        for t in TASKS:
            data = bench.e2e[key][t]
            rows = [dict(zip(data["fields"], x)) for x in data["frames"]]
            assert len(rows) == bench.report["policies"][key]["tasks"][t]["done"]
            assert len({x["frame"] for x in rows}) == len(rows)  # each frame heard once
            for x in rows:
                assert x["e2e_ms"] >= x["latency_ms"] > 0, (key, t, x)
                assert 0 <= x["input_delay_ms"] <= x["e2e_ms"] - x["latency_ms"], (key, t, x)
            m = bench.report["policies"][key]["tasks"][t]
            assert m["transport_p50_ms"] >= 0 and m["e2e_p99_ms"] >= m["e2e_p50_ms"]


def test_where_a_frames_time_goes_covers_every_part_back_to_back(bench):
    for key in POLICIES:
        p = bench.report["policies"][key]
        for t in TASKS:
            data = bench.e2e[key][t]
            for row in data["frames"]:
                x = dict(zip(data["fields"], row))
                parts = x["parts: [wall_ms, cpu_ms]"]
                assert list(parts) == [str(part) for part in FramePart], (key, t)  # every part, in order
                # Back to back: the parts add up to the end-to-end time the monitor heard.
                assert sum(wall for wall, _ in parts.values()) == pytest.approx(x["e2e_ms"], abs=0.01)
                assert parts["stages"][0] > 0 and parts["conversion"][1] > 0 and parts["grant wait"][1] is None
                assert parts["subscriber's callback"][0] >= 0
            # The middleware's time of arrival splits the subscriber's share: its executor took some.
            assert any(dict(zip(data["fields"], row))["parts: [wall_ms, cpu_ms]"]["subscriber's callback"][0] > 0
                       for row in data["frames"]), (key, t)
            ft = p["tasks"][t]["frame_time"]
            assert set(ft) == {str(part) for part in FramePart}
            # The tail: the same parts over the task's slowest results, whose mean e2e they add up to.
            tail = p["tasks"][t]["frame_time_tail"]
            assert set(tail) == set(ft)
            e2e = sorted(dict(zip(data["fields"], row))["e2e_ms"] for row in data["frames"])
            slowest = e2e[-math.ceil(len(e2e) * TAIL_SHARE):]
            assert sum(v["wall_ms"] for v in tail.values()) == pytest.approx(sum(slowest) / len(slowest), abs=0.01)
            assert sum(v["wall_ms"] for v in tail.values()) >= sum(v["wall_ms"] for v in ft.values())
        cpu = p["cpu_ms_per_frame"]
        assert {"executor", "clock", "lanes"} <= set(cpu) and cpu["executor"] > 0
        assert 0 < p["cpu_outside_stages_ms_per_frame"]
        # Of it: the frames' host work and the coordinator's, as the container reports it, each on its threads.
        assert 0 < p["cpu_host_ms_per_frame"] < cpu["lanes"]
        assert 0 < p["cpu_coordinator_ms_per_frame"] < cpu["executor"] + cpu["lanes"]
        assert 0 < p["cpu_stages_ms_per_frame"] <= cpu["lanes"], (key, p["cpu_stages_ms_per_frame"], cpu)
        assert p["goodput_fps"] <= p["throughput_fps"]
        assert set(p["delivery_stalled"]) == set(TASKS) and p["delivery_stall_max_ms"] >= 0.0


def test_files_and_tables(bench):
    names = {p.name for p in bench.out.iterdir()}
    assert {"report.json", "report.md", "latencies.json", "e2e.json", "latency_cdf.png", "miss_rate.png",
            "throughput.png", "frame_time.png", "frame_time_tail.png"} <= names
    md = (bench.out / "report.md").read_text()
    assert "## Comparison" in md and "## End to end over ROS 2" in md
    assert md.index("## Comparison") < md.index("## End to end over ROS 2")
    assert "critical e2e p99 ms" in md and "transport p99 ms" in md and "goodput fps" in md
    assert md.index("## End to end over ROS 2") < md.index("## Where a frame's time goes")
    assert md.index("## Where a frame's time goes") < md.index("The tail: the same over each task's slowest 1%")
    lat = json.loads((bench.out / "latencies.json").read_text())
    assert all(not math.isnan(v) for per in lat.values() for vs in per.values() for v in vs)
    # Each container's output kept, and its camera's: each task's alone, then the policies' (and
    # a container started again, `_2`, where the first was never heard: see the next test).
    logs = {p.name: p.read_text() for p in (bench.out / "logs").iterdir()}
    runs = ("bench_classify_alone", "bench_segment_alone", "bench")
    assert {re.sub(r"_\d+\.log$", ".log", name) for name in logs} == {
        f"{run}_{part}.log" for run in runs for part in ("container", "player")}
    assert all("container up" in logs[f"{run}_container.log"] for run in runs), logs
    assert all(len(PLAYED.findall(logs[f"{run}_player.log"])) == plays
               for run, plays in zip(runs, (1, 1, len(POLICIES)))), logs
    # The glance the demo ends with: a line per policy, its goodput the report's.
    title, head, _rule, *rows, pace = headline_text(bench.out).splitlines()
    rows = [r for r in rows if not r.startswith("- ")]  # a delivery stall's line, where one happened
    # The machine's pace, that two runs of one case are told apart by: each model alone, the CPU.
    iso = bench.report["isolation"]
    assert pace == (f"- alone, p50 ms: classify {iso['classify']['p50_ms']:.1f}, "
                    f"segment {iso['segment']['p50_ms']:.1f}; the classify missed "
                    f"{100 * iso['classify']['miss_rate']:.1f}% alone; on {cpu_text(machine_info())}"), pace
    assert title == "bench:" and head.split()[-2:] == ["goodput", "fps"]
    assert [r.split()[0] for r in rows] == POLICIES
    assert all(float(r.split()[-1]) == round(bench.report["policies"][k]["goodput_fps"], 1)
               for r, k in zip(rows, POLICIES))


def test_a_delivery_stall_is_named_under_the_tables():
    """Results held between the container's publish and the subscriber's middleware (every topic at
    once, in about one replay in a hundred) are counted per task and named, not hidden in a p99."""
    def heard(frame, publish_ms):
        return FrameTiming(frame, 30.0 + publish_ms, 25.0, 1.0, frame,
                           {FramePart.STAGES: PartTime(0.025), FramePart.PUBLISH: PartTime(publish_ms / 1e3)})

    calm = {"det": [heard(i, 0.8) for i in range(10)], "seg": [heard(i, 1.2) for i in range(10)]}
    burst = {"det": [*calm["det"], heard(10, 316.0), heard(11, 266.0)], "seg": [*calm["seg"], heard(10, 290.0)]}
    assert delivery_stalls(calm) == {"delivery_stalled": {"det": 0, "seg": 0}, "delivery_stall_max_ms": 0.0}
    stalled = delivery_stalls(burst)
    assert stalled == {"delivery_stalled": {"det": 2, "seg": 1}, "delivery_stall_max_ms": 316.0}
    assert STALL_MS < 266.0
    (line,) = stall_lines({"naive": delivery_stalls(calm), "aaron": stalled})
    assert line.startswith("- aaron: 3 result(s) (det 2, seg 1)") and "up to 316.0 ms" in line


def test_the_bench_never_collects_its_garbage_while_it_hears_results(bench):
    # A full collection of the bench's heap held the monitor's callbacks up to 200 ms: a policy's
    # e2e tail then measured the harness.
    assert bench.collecting and not any(bench.collecting)
    assert gc.isenabled()  # and the collector is back once the replays are done


def test_the_bench_reads_the_masks_so_the_container_makes_them(bench):
    """A component makes a mask only while a node reads it: the monitor reads them, as a planner
    would, so segmentation's results point to their masks and the masks arrive."""
    assert bench.with_mask and sum(bench.with_mask) >= 0.9 * len(bench.with_mask)
    assert set(bench.masks) == {"segment"} and len(bench.masks) >= 0.9 * sum(bench.with_mask)


def test_single_component_config_keeps_the_rest_of_the_file(bench, tmp_path):
    path = single_component_config(bench.cfg, "segment", tmp_path)
    cfg = load_config(path)
    assert [c.name for c in cfg.components] == ["segment"]
    assert cfg.component("segment").max_rate_hz == 5.0 and cfg.component("segment").input_topic == "cam/image"
    assert "classify" in cfg.nodes  # kept as another node's section: harmless


def test_a_bag_played_faster_is_a_faster_camera(bench, tmp_path):
    """bag_player's rate sets the camera the tasks see: each task's rate is that camera's, at most
    its max_rate_hz (the 10 fps bag at 2x: classify at 20 Hz, segment still at its 5)."""
    params = yaml.safe_load(bench.cfg.read_text())
    params["bag_player"] = {"ros__parameters": {"rate": 2.0}}
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(yaml.safe_dump(params))
    target = RosTarget(RosBenchOptions(bag=bench.cfg.parent / "cam", config=cfg, policies=POLICIES))
    try:
        workload = target.workload()
        assert {t.name: t.rate_hz for t in workload.tasks} == {"classify": 20.0, "segment": 5.0}
        assert "played at 2x: a 20 fps camera" in workload.description
        assert target.settings()["bag_fps"] == 10.0 and target.settings()["play_rate"] == 2.0
    finally:
        target.close()


def test_a_bag_on_topics_no_component_reads_is_refused_before_any_container_starts(bench, tmp_path, caplog):
    """Not a report of zero frames: the file's components and the bag's topics are read first."""
    params = yaml.safe_load(bench.cfg.read_text())
    params["/**"]["ros__parameters"]["input_topic"] = "front/image"
    cfg = tmp_path / "front.yaml"
    cfg.write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match=r"no component reads a topic the bag .*cam publishes \(/cam/image\): "
                                         r"classify reads front/image, segment reads front/image\. A remap"):
        RosTarget(RosBenchOptions(bag=bench.cfg.parent / "cam", config=cfg, policies=POLICIES))
    # One component fed, one not: it runs, says which gets nothing, runs no container for it alone
    # (the player would wait for a subscriber that never comes), and the report says why it is empty.
    params["segment"]["ros__parameters"]["input_topic"] = "/cam/image"
    cfg.write_text(yaml.safe_dump(params))
    with caplog.at_level("WARNING", logger="aaron_ros.ros.bench.target"):
        target = RosTarget(RosBenchOptions(bag=bench.cfg.parent / "cam", config=cfg, policies=POLICIES))
    try:
        assert "classify reads front/image, which the bag does not publish (/cam/image)" in caplog.text
        classify = next(t for t in target.tasks if t.name == "classify")
        alone = target.alone(classify)
        assert alone.records == [] and alone.extra.timings == {"classify": []}
        assert target.settings()["unfed"] == {"classify": "reads front/image, which the bag does not publish "
                                                          "(/cam/image)"}
        report = {"policies": {}, "workload": {"tasks": []}, "settings": target.settings()}
        assert ("- classify received no frame: it reads front/image, which the bag does not publish (/cam/image)"
                in render_e2e_markdown(report))
    finally:
        target.close()


def _classify_alone_unheard(bench, logs: Path, monkeypatch, caplog, logger: str):
    """`classify` alone, its logs in `logs`, a status unheard for 2 s said (by `logger`)."""
    monkeypatch.setattr(system_module, "UNHEARD_S", 2.0)
    with caplog.at_level("WARNING", logger=logger):
        target = RosTarget(RosBenchOptions(bag=bench.cfg.parent / "cam", config=bench.cfg, policies=POLICIES,
                                           log_dir=logs))
        try:
            return target.alone(next(t for t in target.tasks if t.name == "classify"))
        finally:
            target.close()


def test_a_container_up_but_unheard_is_started_again_on_another_domain(bench, tmp_path, monkeypatch, caplog):
    """As when DDS discovery between the container and the bench's node never completes: said
    within UNHEARD_S of its saying it is up, with where its threads were, not after START_TIMEOUT_S.
    Its log kept beside the second's (a log of the last bench in the folder goes); the replay
    served by the second."""
    domains: list[int] = []
    real = system_module.ContainerProcess

    def container(config, workdir, domain_id, *args):
        domains.append(domain_id)
        # An injected fault: the first container on a domain the bench's node does not hear.
        return real(config, workdir, domain_id + (1 if len(domains) == 1 else 0), *args)

    monkeypatch.setattr(system_module, "ContainerProcess", container)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "bench_container.log").write_text("the last bench's")
    result = _classify_alone_unheard(bench, logs, monkeypatch, caplog, "aaron_ros.ros.bench.target")
    assert len(domains) == 2 and domains[0] != domains[1], domains
    first, second = logs / "bench_classify_alone_container.log", logs / "bench_classify_alone_container_2.log"
    assert sorted(logs.glob("*_container*")) == [first, second]
    assert (logs / "bench_classify_alone_player.log").exists()
    said = re.search(rf"the container on ROS domain {domains[0]} said it was up \d+ s after its start, and no "
                     rf"status on {STATUS_TOPIC} was heard in the (\d+) s since \(the bench's node sees 0 "
                     rf"publisher\(s\) of it, and no other node; a fresh node on the domain sees /aaron_bench_monitor; "
                     rf"0 publisher\(s\); then the bench's node sees 0 publisher\(s\) of it, and [^;]*; port "
                     rf"{discovery_port(domains[0])} held by the bench\); its output, its "
                     rf"threads' stacks at the end: "
                     rf"{first}\. Starting it again on domain {domains[1]}", caplog.text)
    assert said and 2 <= int(said[1]) < 10, caplog.text
    assert "(most recent call first)" in first.read_text().split(UP)[1]
    assert UP in second.read_text()
    assert [r.outcome for r in result.records].count(Outcome.DONE) > 0


def test_a_bench_node_deaf_to_a_container_others_hear_is_replaced(bench, tmp_path, monkeypatch, caplog):
    """As when, of the domain's participants, only the bench's own node heard nothing: a fresh
    participant in another process hears the container, so the bench makes its node anew rather
    than start the container again."""
    monitors: list[int] = []
    real = system_module.Monitor

    def monitor(results, domain_id):
        monitors.append(domain_id)
        # An injected fault: the bench's first node on a domain next to the container's.
        return real(results, domain_id + (1 if len(monitors) == 1 else 0))

    monkeypatch.setattr(system_module, "Monitor", monitor)
    logs = tmp_path / "logs"
    logs.mkdir()
    result = _classify_alone_unheard(bench, logs, monkeypatch, caplog, "aaron_ros.ros.bench.system")
    domain = monitors[0]
    assert monitors == [domain, domain], monitors
    assert sorted(p.name for p in logs.glob("*_container*")) == ["bench_classify_alone_container.log"]  # one start
    said = re.search(rf"the container on ROS domain {domain} said it was up \d+ s after its start, and no status on "
                     rf"{STATUS_TOPIC} was heard in the \d+ s since \(the bench's node sees 0 publisher\(s\) of it, "
                     rf"and no other node; a fresh node on the domain sees /aaron_container, /aaron_coordinator, "
                     rf"/classify; 1 publisher\(s\); then the bench's node sees 0 publisher\(s\) of it, and no other "
                     rf"node; port {discovery_port(domain)} held by the container\): the "
                     rf"bench's node, \d+ s old, is replaced by a new one", caplog.text)
    assert said, caplog.text
    assert "the bench's new node heard the container's status" in caplog.text
    assert [r.outcome for r in result.records].count(Outcome.DONE) > 0


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(d.name))
        except OSError:
            pass  # ended meanwhile
    return found


def test_a_bench_ended_by_sigterm_stops_the_container_it_started(bench, tmp_path):
    """As a CI job's timeout ends it: with the shell's code, and no container left serving, orphaned."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "aaron_ros.cli", "bench", "--bag", str(bench.cfg.parent / "cam"),
                             "--config", str(bench.cfg), "--policies", "aaron", "--repeats", "1", "--out", str(out),
                             "--no-progress"], cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log = out / "logs" / "bench_classify_alone_container.log"
    end = time.monotonic() + 120
    while not (log.exists() and UP in log.read_text()) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.2)
    started = _children(proc.pid)
    assert started and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else started
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert not [pid for pid in started if Path(f"/proc/{pid}").exists()], err


def test_the_bench_runs_on_a_domain_of_its_own_unless_told(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", "42")
    assert bench_domain() == 42
    monkeypatch.delenv("ROS_DOMAIN_ID")
    picked = {bench_domain() for _ in range(50)}
    assert all(PRIVATE_DOMAINS[0] <= d < PRIVATE_DOMAINS[1] for d in picked) and 0 not in picked
    taken = set(range(PRIVATE_DOMAINS[0], PRIVATE_DOMAINS[1] - 1))  # all but the last
    assert private_domain(taken) == PRIVATE_DOMAINS[1] - 1


def test_the_bench_keeps_to_domains_whose_discovery_port_no_other_socket_can_take(bench, monkeypatch, caplog):
    """Linux hands out 32768-60999 to any socket: the discovery ports of domains 102-214."""
    assert discovery_port(0) == 7400 and discovery_port(232) == 65400
    assert [d for d in range(233) if domain_risk(d, DEFAULT_EPHEMERAL)] == list(range(102, 215))
    assert all(domain_risk(d, DEFAULT_EPHEMERAL) is None for d in range(*PRIVATE_DOMAINS))
    assert all(d > 50 for d in range(*PRIVATE_DOMAINS))  # apart from the suite's own (conftest)
    # A machine whose ephemeral ports begin at domain 80's: the bench keeps below it.
    monkeypatch.setattr(domain_module, "ephemeral_ports", lambda: range(discovery_port(80), 61000))
    assert {private_domain() for _ in range(200)} <= set(range(PRIVATE_DOMAINS[0], 80))
    assert private_domain(set(range(PRIVATE_DOMAINS[0], 80))) >= 80  # all taken: one at risk rather than none
    # A domain given at risk is said, naming the port and the range.
    monkeypatch.setenv("ROS_DOMAIN_ID", "90")
    with caplog.at_level("WARNING", logger="aaron_ros.ros.bench.target"):
        RosTarget(RosBenchOptions(bag=bench.cfg.parent / "cam", config=bench.cfg, policies=POLICIES)).close()
    assert (f"ROS domain 90's discovery port 29900 is in this machine's ephemeral port range ({discovery_port(80)}-"
            "60999): when another process's socket holds it, a node started on the domain finds no other node. "
            "ROS 2 advises domains 0-101: set ROS_DOMAIN_ID to one of those") in caplog.text


def test_the_bench_keeps_off_a_domain_another_process_is_on(bench, monkeypatch, caplog):
    """Two benches on one machine took one domain, and the second heard the first's container.
    A participant elsewhere on this machine (a fresh node, in a process of its own) keeps the
    bench's pick off its domain, and a domain given that has one is said."""
    idle = sorted(set(range(*PRIVATE_DOMAINS)) - domains_in_use(range(*PRIVATE_DOMAINS)))
    used, other = idle[0], idle[1]
    other_process = subprocess.Popen([sys.executable, "-m", "aaron_ros.ros.probe", str(used), "/none", "60"],
                                     stdout=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while used not in domains_in_use([used]) and time.monotonic() < end:
            time.sleep(0.1)
        in_use = domains_in_use(range(*PRIVATE_DOMAINS))
        assert used in in_use and other not in in_use
        taken = set(range(*PRIVATE_DOMAINS)) - {used, other}
        assert {private_domain(taken) for _ in range(20)} == {other}
        monkeypatch.setenv("ROS_DOMAIN_ID", str(used))
        with caplog.at_level("WARNING", logger="aaron_ros.ros.bench.target"):
            RosTarget(RosBenchOptions(bag=bench.cfg.parent / "cam", config=bench.cfg, policies=POLICIES)).close()
        assert (f"ROS domain {used} has participants on this machine already (pid {other_process.pid}): their "
                "nodes may feed or answer the bench's; unset ROS_DOMAIN_ID for a domain of the bench's own"
                ) in caplog.text
    finally:
        other_process.kill()
        other_process.wait()


def test_a_status_from_another_container_on_the_domain_is_named_as_such(bench, tmp_path, ros_context, ros_domain):
    """A domain given that another system's container is on: its status is not taken for this
    container's, nor its tasks for components that failed to load."""
    from rclpy.executors import SingleThreadedExecutor

    # An injected fault: another container's status, from a node of the test's own.
    node = rclpy.create_node("aaron_coordinator", context=ros_context)
    publisher = node.create_publisher(CoordinatorStatus, STATUS_TOPIC, 10)
    other = CoordinatorStatus(policy="naive", tasks=[TaskStatus(task="track"), TaskStatus(task="classify")])
    node.create_timer(0.05, lambda: publisher.publish(other))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    spinning = threading.Thread(target=executor.spin, daemon=True)
    spinning.start()
    before = set(_children(os.getpid()))
    try:
        with pytest.raises(DomainShared, match=re.escape(
                f"{bench.cfg}: the status heard on ROS domain {ros_domain} is another container's: it names "
                "task(s) ['track'] that this file has not. Another system runs on the domain; stop it, or unset "
                "ROS_DOMAIN_ID for a domain of the bench's own")):
            BenchSystem(bench.cfg, bench.cfg.parent / "cam", tmp_path, domain_id=ros_domain)
    finally:
        executor.shutdown()
        node.destroy_node()
    assert set(_children(os.getpid())) <= before  # its container stopped


@pytest.mark.parametrize("argv", [
    ["--workload", "f1tenth", "--bag", "b", "--config", "f1tenth"],  # both sources
    [],  # neither
    ["--bag", "b"],  # no config
    ["--bag", "no/such/bag", "--config", "f1tenth"],
])
def test_bench_needs_one_source(argv, tmp_path, capsys):
    assert main(["bench", *argv, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "aaron-ros bench: error:" in capsys.readouterr().err


def test_zero_rounds_are_refused_before_any_run_naming_the_flag(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["bench", "--bag", "b", "--config", "f1tenth", "--repeats", "0", "--out", str(tmp_path / "o")])
    assert stopped.value.code == 2
    assert "argument --repeats: must be at least 1, got 0" in capsys.readouterr().err


def test_what_the_player_said_it_published_is_read_from_its_printed_lines_not_its_rounded_log():
    said = ("[INFO] [1.5] [bag_player]: published 300 frames after a lead-in of 30 frames in 10.0 s (30.1/s)\n"
            "lead-in of 30 frames; measured from stamp 1796543918524285078 ns\n"
            "published 300 frames of data/sample_bag in 9.967 s\n")
    assert parse_played(said) == Played(300, 9.967, 30, 1796543918524285078)
    assert parse_played(said.splitlines(keepends=True)[-1]) == Played(300, 9.967)  # no lead-in
    assert parse_played(said.splitlines(keepends=True)[0]) is None  # the log line alone


def test_the_camera_plays_from_a_process_of_its_own_once_per_replay(tmp_path, ros_context, ros_domain):
    """The bench's image source is `aaron-ros play` in another process: its frames reach a
    subscriber here over DDS, and it waits for that subscriber before the first frame. The same
    process plays every replay, as one camera driver serves a robot's whole trip, and ends, with
    its participant, when the bench closes it."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    bag = tmp_path / "cam"
    write_image_bag(bag, sample_frames(width=160, height=120, fps=10.0, seconds=2.0), topic="/cam/image",
                    progress=False)
    node = rclpy.create_node("listener", context=ros_context)
    got, names = [], set()
    node.create_subscription(Image, "/renamed", got.append, qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)

    def spin() -> None:
        executor.spin_once(timeout_sec=0.02)
        names.update(node.get_node_names())

    def settle() -> None:  # the last frames still in flight
        for _ in range(20):
            spin()

    camera = CameraProcess(bag, {"remap": ["/cam/image:=/renamed"]}, ros_domain)
    assert camera.topics == ["/renamed"]
    try:
        frames, seconds, *_ = camera.play(1, lambda: node.count_publishers("/renamed") >= 1, spin)
        settle()
        player = camera._proc
        assert frames == FRAMES and seconds > 0
        assert len(got) == FRAMES  # none lost: it waited for this subscriber
        assert "bag_player" in names and [n.get_name() for n in executor.get_nodes()] == ["listener"]  # not ours

        again, *_ = camera.play(1, lambda: node.count_publishers("/renamed") >= 1, spin)
        settle()
        assert again == FRAMES and len(got) == 2 * FRAMES
        assert camera._proc is player and player.poll() is None  # the same process, still serving
    finally:
        camera.close()
    assert player.returncode == 0  # it ended as its input closed, not killed
    executor.shutdown()
    node.destroy_node()


@pytest.mark.parametrize("fault", ["unheard", "refused"])
def test_a_camera_not_matched_in_time_is_started_again(fault, tmp_path, ros_context, ros_domain, monkeypatch,
                                                        caplog):
    """Discovery that never completes cannot be caused on demand, so the fault is injected: the
    first player publishes on a topic nobody reads ("unheard"), or a fake `matched` refuses it
    although the subscriber heard it ("refused": a stopped player must not linger and pass for the
    next one). It is stopped after the bench's own 10 s wait (a loaded machine needs them to start
    a player and match it), a new one started as asked, and every frame reaches the subscriber."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from aaron_ros.ros.bench import playback

    bag = tmp_path / "cam"
    write_image_bag(bag, sample_frames(width=160, height=120, fps=10.0, seconds=2.0), topic="/cam/image",
                    progress=False)
    node = rclpy.create_node("listener", context=ros_context)
    got = []
    node.create_subscription(Image, "/cam/image", got.append, qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    camera = CameraProcess(bag, {}, ros_domain)
    starts = []
    start = camera._start

    def faulty_first(cmd):
        starts.append(cmd)
        unheard = fault == "unheard" and len(starts) == 1
        return start(cmd + ["--remap", "/cam/image:=/nowhere"] if unheard else cmd)

    refused: set[bytes] = set()

    def publishers() -> set[bytes]:
        return {bytes(i.endpoint_gid) for i in node.get_publishers_info_by_topic("/cam/image")}

    def matched() -> bool:
        if fault == "refused" and len(starts) == 1:
            refused.update(publishers())  # the first player's, which may linger in the graph once stopped
            return False
        return bool(publishers() - refused)  # the player now playing, not one stopped before

    monkeypatch.setattr(camera, "_start", faulty_first)
    try:
        with caplog.at_level("WARNING", logger=playback.__name__):
            frames, *_ = camera.play(1, matched, lambda: executor.spin_once(timeout_sec=0.02))
        for _ in range(20):  # the last frames still in flight
            executor.spin_once(timeout_sec=0.02)
    finally:
        camera.close()
        executor.shutdown()
        node.destroy_node()
    # A third start where the second player and this listener missed each other too, as a pair of
    # fresh participants now and then does (results/ros_bench/container_starts_cpu2_amd_epyc/).
    assert len(starts) in (2, 3) and "starting it again (2 of 3)" in caplog.text, caplog.text
    assert "playing anyway" not in caplog.text
    assert frames == FRAMES and len(got) == FRAMES
