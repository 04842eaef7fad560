"""The ROS 2 system for real: the container (coordinator node + perception components) over real
DDS, fed from a real bag; results seen by a subscriber in another process; bad images beside
good ones; the policy switch service; a component that fails to load; SIGTERM shutdown."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from aaron_ros.msg import CoordinatorStatus, FrameOutcomes, InferenceResult, StageGrant  # noqa: E402
from aaron_ros.ros.container import Container, ContainerOptions  # noqa: E402
from aaron_ros.ros.coordinator_node import ERROR, TRACE_QOS, WARN  # noqa: E402
from aaron_ros.ros.domain import domain_risk  # noqa: E402
from aaron_ros.ros.image_conversions import array_to_compressed, array_to_image  # noqa: E402
from aaron_ros.ros.record import sample_frames, write_image_bag  # noqa: E402
from aaron_ros.ros.run import status_table, summary_table  # noqa: E402
from aaron_ros.srv import SetPolicy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA", "PYTHONPATH": str(ROOT)}


def _config(tmp_path: Path, extra: str = "", components: str = "[classify, segment]",
            segment_topic: str = "/cam/image") -> Path:
    path = tmp_path / "system.yaml"
    path.write_text(textwrap.dedent(f"""\
        /**:
          ros__parameters:
            input_topic: /cam/image
            kernel_bag_dir: {tmp_path / "no_bags"}
        aaron_container:
          ros__parameters:
            components: {components}
        aaron_coordinator:
          ros__parameters:
            policy: aaron
            status_rate_hz: 5.0
            publish_grants: true
        classify:
          ros__parameters:
            model: mobilenet_v3_small
            deadline_ms: 300.0
            criticality: critical
            max_rate_hz: 30.0
        segment:
          ros__parameters:
            model: seg_net
            input_topic: {segment_topic}
            deadline_ms: 500.0
            max_rate_hz: 30.0
        """) + textwrap.dedent(extra))
    return path


def _with(cfg: Path, model: str, *lines: str) -> Path:
    """The `_config` file with `lines` ("key: value") added to the section that serves `model`."""
    anchor = f"    model: {model}\n"
    cfg.write_text(cfg.read_text().replace(anchor, anchor + "".join(f"    {line}\n" for line in lines), 1))
    return cfg


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bag") / "cam"
    write_image_bag(out, sample_frames(width=160, height=120, fps=10.0, seconds=2.0), topic="/cam/image",
                    progress=False)
    return out


def _spin_until(container: Container, cond, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        container.executor.spin_once(timeout_sec=0.05)
    return cond()


def _listener_matched(container: Container, script: str, domain: int, topics: tuple[str, ...]) -> subprocess.Popen:
    """A listener process running `script`, matched by the container's result publishers on every
    topic. Cross-process discovery once failed to match within 30 s on a loaded CI machine (not
    reproduced here, alone or with two suites at once); a second listener is started once before the test fails, and
    the failure says what the container saw."""
    for attempt in (1, 2):
        listener = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(domain)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        assert listener.stdout.readline().strip() == "ready", listener.stderr.read()
        if _spin_until(container, lambda: all(container.node.count_subscribers(t) >= 1 for t in topics), 30):
            return listener
        listener.kill()
        _, err = listener.communicate(timeout=10)
        seen = (container.node.get_node_names(), {t: container.node.count_subscribers(t) for t in topics})
        print(f"listener attempt {attempt} not matched in 30 s: container saw {seen}; listener said {err!r}",
              file=sys.stderr)
    raise AssertionError(f"no listener matched the container's {topics} in two attempts (see stderr)")


CLASSIFY_LISTENER = """\
        import sys, time, rclpy
        from aaron_ros.msg import InferenceResult
        rclpy.init(domain_id=int(sys.argv[1]))
        node = rclpy.create_node("listener")
        got = []
        node.create_subscription(InferenceResult, "/aaron/classify/result", got.append, 10)
        print("ready", flush=True)
        end = time.monotonic() + 60
        while len(got) < 5 and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        print(len(got), got[-1].model if got else "", got[-1].kind if got else -1, flush=True)
    """


def test_bag_through_the_container_reaches_a_subscriber_in_another_process(tmp_path, small_bag, ros_domain):
    container = Container(ContainerOptions(_config(tmp_path), bag=str(small_bag), domain_id=ros_domain))
    statuses = []
    watcher = container.node.create_subscription(CoordinatorStatus, "/aaron/status", statuses.append, 10)
    table = ""
    try:
        # DDS drops what is published before the other process is discovered: on a busy machine that
        # takes longer than the 2 s bag, so wait for the match before the bag starts.
        listener = _listener_matched(container, CLASSIFY_LISTENER, ros_domain, ("/aaron/classify/result",))
        container.spin(duration_s=60)  # ends with the bag
        table = status_table(container)
    finally:
        container.shutdown()
    out, err = listener.communicate(timeout=60)
    # The short form of where a result's time went: four phases, a real time each.
    row = next(line.split() for line in table.splitlines() if line.split()[:1] == ["classify"])
    assert "in/wait/model/out ms" in table and len([float(v) for v in row[6].split("/")]) == 4, table
    published = container.components["classify"].counters["published"]
    assert len(out.split()) == 3, f"the listener heard nothing ({published} published): {out!r} {err}"
    count, model, kind = out.split()
    assert int(count) >= 5 and model == "mobilenet_v3_small" and int(kind) == InferenceResult.KIND_CLASSES, err
    assert container.player.published == 20
    # The run's summary accounts for every frame the bag published, per task.
    summary = summary_table(container)
    for task in ("classify", "segment"):
        row = next(line.split() for line in summary.splitlines() if line.split()[:1] == [task])
        received, on_time, late, dropped, failed, rejected, limited, unaccounted, lost = (int(v) for v in row[8:17])
        assert received + lost == 20 and on_time + late + dropped + failed + rejected + limited == received, summary
        assert unaccounted == 0, summary
        assert lost == 0, summary  # the bag's last frames too: the container takes them before it stops
        assert on_time + late >= 5, summary
    assert statuses and {t.task for t in statuses[-1].tasks} == {"classify", "segment"}
    assert statuses[-1].policy == "aaron"
    del watcher


def test_every_frame_handed_over_ends_in_one_outcome_heard_in_batches(tmp_path, small_bag, ros_domain):
    cfg = _config(tmp_path, components="[classify]")
    cfg.write_text(cfg.read_text().replace("publish_grants: true", "publish_outcomes: true"))
    heard: list[FrameOutcomes] = []
    ctx = rclpy.Context()  # a listener of its own, alive after the container's context ends
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = rclpy.create_node("outcome_listener", context=ctx)
    node.create_subscription(FrameOutcomes, "/aaron/outcomes", heard.append, TRACE_QOS)
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    container = Container(ContainerOptions(cfg, bag=str(small_bag), domain_id=ros_domain))
    try:
        until = time.monotonic() + 30
        while node.count_publishers("/aaron/outcomes") < 1 and time.monotonic() < until:
            time.sleep(0.05)
        container.spin(duration_s=1.0)  # half the bag: frames are running or queued at the stop
    finally:
        container.shutdown()  # they end (done or dropped), and their outcomes go out as the node goes
    c = container.components["classify"].counters
    submitted = c["received"] - c["rate_limited"] - c["rejected"]
    until = time.monotonic() + 10
    while sum(len(m.outcomes) for m in heard) < submitted and time.monotonic() < until:
        time.sleep(0.05)
    executor.shutdown()
    ctx.try_shutdown()
    frames = sorted(o.frame for m in heard for o in m.outcomes)
    assert submitted >= 3 and frames == list(range(submitted)), (submitted, frames)
    assert all(o.task == "classify" and len(o.stage_cpu_ms) == len(o.versions) for m in heard for o in m.outcomes)
    # Each carries its image's stamp (the player stamps as it publishes): distinct, in frame order.
    stamps = [Time.from_msg(o.stamp).nanoseconds for o in sorted((o for m in heard for o in m.outcomes),
                                                               key=lambda o: o.frame)]
    assert all(stamps) and stamps == sorted(set(stamps))


def test_bad_images_are_rejected_and_the_other_task_keeps_serving(tmp_path, ros_domain):
    cfg = _config(tmp_path, segment_topic="/other/image")  # classify gets the bad images
    container = Container(ContainerOptions(cfg, domain_id=ros_domain))
    node = container.node
    bad_pub = node.create_publisher(Image, "/cam/image", qos_profile_sensor_data)
    good_pub = node.create_publisher(Image, "/other/image", qos_profile_sensor_data)
    results, masks = [], []
    node.create_subscription(InferenceResult, "/aaron/segment/result", results.append, 10)
    node.create_subscription(Image, "/aaron/segment/result/mask", masks.append, 10)
    grants = []
    node.create_subscription(StageGrant, "/aaron/grants", grants.append, 100)
    diagnostics = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    good = array_to_image(np.full((120, 160, 3), 90, np.uint8), "rgb8")
    bad = [array_to_image(np.zeros((120, 160, 3), np.uint8), "rgb8") for _ in range(3)]
    bad[0].encoding = "yuv422_weird"
    bad[1].data = bytes(bad[1].data)[:1000]  # truncated
    bad[2].step = 7  # step does not match width
    try:
        _spin_until(container, lambda: bad_pub.get_subscription_count() and good_pub.get_subscription_count(), 10)
        for i in range(6):
            bad_pub.publish(bad[i % 3])
            good_pub.publish(good)
            _spin_until(container, lambda: False, 0.15)
        assert _spin_until(container, lambda: len(results) >= 3 and masks, 30)
        # What a monitor heard: the task fed nothing but bad images was a WARN saying so, the other never.
        said = [(s.name, s.level, s.message) for d in diagnostics for s in d.status]
        assert any(name == "aaron_ros: classify" and level == bytes([WARN]) and "bad image(s) rejected since the "
                   "last report" in message for name, level, message in said), said
        assert not any(name == "aaron_ros: segment" and "rejected" in message for name, _, message in said), said
    finally:
        container.shutdown()
    classify = container.components["classify"]
    assert classify.counters["rejected"] >= 3 and classify.counters["published"] == 0
    r = results[0]
    assert r.kind == InferenceResult.KIND_MASK and r.mask_topic == "/aaron/segment/result/mask"
    assert masks[0].encoding == "mono8" and masks[0].header.stamp == r.header.stamp
    assert r.latency_ms > 0 and ".eager." in r.kernel_version  # no kernel bag here: eager versions
    seg = [g for g in grants if g.task == "segment"]
    assert seg and {g.stage for g in seg} == set(range(len(container.coordinator.service.graphs["seg_net"])))
    g = seg[0]
    assert g.lane in container.coordinator.service.lanes and g.stage_name and g.version
    assert (g.finished.sec, g.finished.nanosec) >= (g.granted.sec, g.granted.nanosec)
    # Pre- and post-processing are granted work: the image's conversion inside the first stage's
    # grant, the mask's decoding and message inside the last one's, and nowhere else.
    last = len(container.coordinator.service.graphs["seg_net"]) - 1
    assert all((g.pre_ms > 0) == (g.stage == 0) and (g.post_ms > 0) == (g.stage == last) for g in seg), \
        [(g.stage, g.pre_ms, g.post_ms) for g in seg]


def test_a_mask_is_made_only_while_a_node_reads_it(tmp_path, ros_domain):
    """Lazy outputs: with no subscriber on the mask topic no mask is made, and the results say so
    (an empty mask_topic); once a node subscribes, masks come with the results that point to them."""
    container = Container(ContainerOptions(_config(tmp_path, components="[segment]"), domain_id=ros_domain))
    node = container.node
    pub = node.create_publisher(Image, "/cam/image", qos_profile_sensor_data)
    results, masks = [], []
    node.create_subscription(InferenceResult, "/aaron/segment/result", results.append, 50)
    sent = [0]

    def publish_until(cond) -> bool:
        end = time.monotonic() + 30
        while not cond() and time.monotonic() < end:
            stamp = Time(seconds=1000.0 + 0.1 * sent[0]).to_msg()
            pub.publish(array_to_image(np.full((120, 160, 3), 90, np.uint8), "rgb8", Header(stamp=stamp)))
            sent[0] += 1
            _spin_until(container, lambda: False, 0.1)
        return cond()

    try:
        assert _spin_until(container, pub.get_subscription_count, 10)
        assert publish_until(lambda: len(results) >= 2)
        unread = list(results)
        mask_pub = container.components["segment"]._mask_pub
        node.create_subscription(Image, "/aaron/segment/result/mask", masks.append, 50)
        assert _spin_until(container, mask_pub.get_subscription_count, 10)
        assert publish_until(lambda: masks and any(r.mask_topic for r in results))
        _spin_until(container, lambda: False, 0.5)
    finally:
        container.shutdown()
    assert all(r.mask_topic == "" for r in unread)
    pointing = [r for r in results if r.mask_topic]
    assert all(r.mask_topic == "/aaron/segment/result/mask" for r in pointing)
    def stamps(msgs) -> set:
        return {(m.header.stamp.sec, m.header.stamp.nanosec) for m in msgs}

    assert pointing and stamps(pointing) <= stamps(masks) <= stamps(results)


def test_one_conversion_per_image_and_none_for_a_dropped_frame(tmp_path, ros_domain):
    """Two components on one topic share one subscription, and at one input size convert each image
    once, in the first granted stage; frames dropped from the queue while waiting (keep_latest
    under a burst) are never converted. OpenCV runs on the lane's own thread: its pool would wait
    for a core granted to another lane."""
    cv2.setNumThreads(4)  # as a process that set it before the container came up
    cfg = _config(tmp_path, components="[classify, twin]", extra="""\
        twin:
          ros__parameters:
            model: mobilenet_v3_small
            deadline_ms: 300.0
            overload: keep_latest
            max_rate_hz: 30.0
        """)
    container = Container(ContainerOptions(cfg, domain_id=ros_domain))
    node = container.node
    pub = node.create_publisher(Image, "/cam/image", 50)
    comps = container.components
    assert cv2.getNumThreads() == 1
    sent = [0]

    def publish() -> None:
        stamp = Time(seconds=1000.0 + 0.05 * sent[0]).to_msg()  # apart by more than the rate limit's period
        pub.publish(array_to_image(np.full((120, 160, 3), sent[0] % 250, np.uint8), "rgb8", Header(stamp=stamp)))
        sent[0] += 1

    def total(key: str) -> int:
        return sum(c.counters[key] for c in comps.values())

    try:
        assert _spin_until(container, lambda: pub.get_subscription_count() >= 1, 10)
        assert comps["classify"]._sub is comps["twin"]._sub and pub.get_subscription_count() == 1
        for i in range(5):  # paced: each image served by both components before the next
            publish()
            assert _spin_until(container, lambda i=i: total("published") == 2 * (i + 1), 30), total("received")
        paced = {name: dict(c.counters) for name, c in comps.items()}
        assert total("converted") == 5 and total("shared") == 5, paced  # one conversion per image
        for _ in range(12):  # a burst: twin keeps only the newest waiting frame
            publish()
        seen: list = [None]

        def settled() -> bool:  # nothing changed over a second, every started frame published
            _spin_until(container, lambda: False, 1.0)
            now = {name: dict(c.counters) for name, c in comps.items()}
            still, seen[0] = now == seen[0], now
            return still and total("published") == total("converted") + total("shared")

        assert _spin_until(container, settled, 60), seen
    finally:
        container.shutdown()
    twin = {k: v - paced["twin"][k] for k, v in comps["twin"].counters.items()}
    assert twin["received"] > 2 and twin["rate_limited"] == 0 and twin["rejected"] == 0  # best effort: some lost
    # Frames that started were converted (or shared) exactly once; the dropped ones never were.
    assert twin["converted"] + twin["shared"] == twin["published"] < twin["received"], twin


def test_policy_switch_by_service_and_by_parameter_and_a_component_failing_at_load(tmp_path, small_bag, ros_domain):
    cfg = _config(tmp_path, components="[classify, segment, broken]", extra="""\
        broken:
          ros__parameters:
            component: aaron_ros.ros.no_such_module:Nothing
        """)
    container = Container(ContainerOptions(cfg, bag=str(small_bag), domain_id=ros_domain))
    try:
        assert set(container.components) == {"classify", "segment"}
        policy = container.coordinator.describe_parameter("policy")  # declared from params.COORDINATOR
        assert not policy.read_only and policy.additional_constraints.startswith("one of: sequential")
        assert container.components["classify"].describe_parameter("deadline_ms").floating_point_range
        assert "broken" in container.failed and "no_such_module" in container.failed["broken"]
        # ... and a robot's monitor sees it: an ERROR in /diagnostics naming why.
        diags = []
        container.node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        assert _spin_until(container, lambda: any(d.name == "aaron_ros: broken" for a in diags for d in a.status), 15)
        broken = next(d for a in diags for d in a.status if d.name == "aaron_ros: broken")
        assert broken.level == DiagnosticStatus.ERROR and "no_such_module" in broken.message
        # Before the bag plays, a task that has heard nothing is not reported healthy either.
        quiet = next(d for a in diags for d in a.status if d.name == "aaron_ros: classify")
        assert quiet.level == DiagnosticStatus.WARN and "no frame" in quiet.message, quiet.message
        client = container.node.create_client(SetPolicy, "/aaron/set_policy")
        assert client.wait_for_service(timeout_sec=10)
        results = []
        container.node.create_subscription(InferenceResult, "/aaron/classify/result", results.append, 10)
        container.player.wait_for_subscribers(1, 10)
        container.player.start()
        assert _spin_until(container, lambda: len(results) >= 2)
        bad = client.call_async(SetPolicy.Request(policy="fifo"))
        assert _spin_until(container, bad.done, 10)
        assert not bad.result().success and "unknown policy 'fifo'" in bad.result().message
        ok = client.call_async(SetPolicy.Request(policy="sequential"))
        assert _spin_until(container, ok.done, 10) and ok.result().success
        before = len(results)
        assert _spin_until(container, lambda: len(results) >= before + 2)
        assert container.coordinator.service.policy_name == "sequential"
        assert len(container.coordinator.service.lanes) == 1
        assert container.coordinator.get_parameter("versions").value == "solo"  # the service set the parameters
        versions_alone = client.call_async(SetPolicy.Request(versions="eager"))  # no policy: the one in force
        assert _spin_until(container, versions_alone.done, 10) and versions_alone.result().success
        assert (container.coordinator.service.policy_name, container.coordinator.service.versions) == \
            ("sequential", "eager")
        back = client.call_async(SetPolicy.Request(versions="solo"))
        assert _spin_until(container, back.done, 10) and back.result().success

        # As `ros2 param set` does it: the parameter services, over DDS.
        params = AsyncParameterClient(container.node, "aaron_coordinator")
        assert params.wait_for_services(timeout_sec=10)

        def set_one(name, value):
            future = params.set_parameters([Parameter(name, value=value)])
            assert _spin_until(container, future.done, 10)
            return future.result().results[0]

        assert set_one("policy", "priority").successful
        assert container.coordinator.service.policy_name == "priority"
        assert container.coordinator.service.versions == "solo"  # the versions parameter, kept
        refused = set_one("policy", "fifo")
        assert not refused.successful and "unknown policy 'fifo'" in refused.reason
        assert not set_one("status_rate_hz", 0.0).successful  # out of its range
        assert not set_one("lanes", 1).successful  # read-only: the lanes exist already
        assert set_one("miss_warn_threshold", 0.5).successful
        assert container.coordinator.params.miss_warn_threshold == 0.5
        assert container.coordinator.service.policy_name == "priority"

        # A component's deadline, rate limit and overload rule, likewise: the coordinator's task follows.
        params = AsyncParameterClient(container.node, "classify")
        assert params.wait_for_services(timeout_sec=10)
        assert set_one("deadline_ms", 250.0).successful and set_one("overload", "keep_latest").successful
        assert set_one("max_rate_hz", 3.0).successful
        spec = container.coordinator.service.specs["classify"]
        assert (spec.deadline_ms, spec.overload.value, spec.rate_hz) == (250.0, "keep_latest", 3.0)
        assert container.coordinator.service.driver.call(lambda c: c.tasks["classify"].spec) == spec
        refused = set_one("overload", "drop_everything")
        assert not refused.successful and "overload" in refused.reason
        assert not set_one("criticality", "critical").successful  # read-only
        assert set_one("deadline_ms", 300.0).successful  # back to the file's: the summary still says it changed
        container.player.wait(30)
        _spin_until(container, lambda: False, 1.0)
    finally:
        container.shutdown()
    totals = container.coordinator.service.snapshot()["classify"]["totals"]
    assert totals["failed"] == 0 and totals["done"] >= 4
    # The run's summary says the deadline and the policy changed during the run, each in turn.
    summary = summary_table(container)
    row = next(line.split() for line in summary.splitlines() if line.split()[:1] == ["classify"])
    assert row[3] == "300->250->300", row
    assert "policy aaron->sequential->priority:" in summary.splitlines()[0]


def test_run_writes_its_stacks_on_sigusr1_and_exits_cleanly_on_sigterm(tmp_path, small_bag, ros_domain):
    cfg = _config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "aaron_ros.cli", "run", str(cfg), "--no-table"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**ENV, "ROS_DOMAIN_ID": str(ros_domain)})
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "container up" in line:
            break
    assert any("container up" in line for line in lines), "".join(lines)
    # What the bench asks of a container that does not report: where each thread is. It goes on.
    proc.send_signal(signal.SIGUSR1)
    dump = []
    for line in proc.stdout:
        dump.append(line)
        if re.search(r'aaron_ros/ros/run\.py", line \d+ in run$', line):  # the main thread, spinning
            break
    assert any("(most recent call first)" in line for line in dump), "".join(dump)
    assert any(re.search(r"^Thread 0x[0-9a-f]+ \(most recent call first\)", line) for line in dump), "".join(dump)
    time.sleep(1.0)
    assert proc.poll() is None, "".join(lines + dump)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the container did not stop within 15 s of SIGTERM")
    assert proc.returncode == 128 + signal.SIGTERM  # in flight frames drained, then the shell's code
    assert time.monotonic() - sent < 15


def test_camera_source_feeds_the_container(tmp_path, ros_domain):
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(10):
        writer.write(np.full((120, 160, 3), 20 * i, np.uint8))
    writer.release()
    cfg = _config(tmp_path, extra="""\
        camera:
          ros__parameters:
            topic: /cam/image
            rate_hz: 10.0
        """)
    container = Container(ContainerOptions(cfg, camera=str(video), domain_id=ros_domain))
    results = []
    container.node.create_subscription(InferenceResult, "/aaron/classify/result", results.append, 10)
    try:
        assert _spin_until(container, lambda: len(results) >= 3)
    finally:
        container.shutdown()
    assert results[0].kind == InferenceResult.KIND_CLASSES and len(results[0].class_ids) == 5


def test_rate_limiter_admits_the_asked_rate_from_camera_stamps():
    from aaron_ros.ros.perception import RateLimiter

    def admitted(camera_hz, limit_hz, seconds=3.0, jitter=0.0):
        rng = np.random.default_rng(0)
        lim = RateLimiter(limit_hz)
        stamps = np.arange(0, seconds, 1 / camera_hz) + rng.uniform(-jitter, jitter, int(seconds * camera_hz))
        return sum(lim.admit(t) for t in stamps)

    assert admitted(30, 30, jitter=0.002) == 90  # a limit at the camera's rate drops nothing
    assert 58 <= admitted(30, 20) <= 61  # 20 of every 30 frames
    assert 29 <= admitted(30, 10) <= 31
    # A hiccup at the camera's rate: one frame 30 ms late, the next on time again; none is cut.
    lim = RateLimiter(30)
    assert all(lim.admit(t) for t in [k / 30 + (0.030 if k == 10 else 0.0) for k in range(20)])
    # The same for the first frame (the bag player's first came 11-15 ms behind its schedule, measured).
    lim = RateLimiter(30)
    assert all(lim.admit(t) for t in [k / 30 + (0.011 if k == 0 else 0.0) for k in range(20)])


def test_the_container_runs_the_executor_its_file_names(tmp_path, ros_domain):
    from rclpy.executors import SingleThreadedExecutor

    kinds = {}
    for executor in ("events", "single"):
        cfg = _config(tmp_path, components="[classify]")
        text = cfg.read_text().replace("components: [classify]", f"components: [classify]\n    executor: {executor}")
        cfg.write_text(text)
        container = Container(ContainerOptions(cfg, domain_id=ros_domain))
        kinds[executor] = type(container.executor).__name__
        container.shutdown()
    assert kinds["single"] == SingleThreadedExecutor.__name__ and kinds["events"] == "EventsExecutor", kinds
    cfg.write_text(cfg.read_text().replace("executor: single", "executor: multi"))
    with pytest.raises(ValueError, match="executor"):
        Container(ContainerOptions(cfg, domain_id=ros_domain))


def test_compressed_images_from_a_bag_are_served_and_corrupt_ones_are_counted(tmp_path, ros_domain):
    """image_transport: compressed reads <input_topic>/compressed. A payload whose bytes are not what
    its format says is rejected on arrival; one that starts right but does not decode fails its
    frame inside the first grant, naming why; a jpeg bag then serves as any camera."""
    bag = tmp_path / "jpeg_bag"
    write_image_bag(bag, sample_frames(width=160, height=120, fps=10.0, seconds=1.5), topic="/cam/image/compressed",
                    encoding="jpeg", progress=False)
    cfg = _with(_config(tmp_path, components="[classify]"), "mobilenet_v3_small", "image_transport: compressed")
    container = Container(ContainerOptions(cfg, bag=str(bag), domain_id=ros_domain))
    classify, service = container.components["classify"], container.coordinator.service
    pub = container.node.create_publisher(CompressedImage, "/cam/image/compressed", 10)
    grey = np.full((120, 160, 3), 90, np.uint8)
    png_said_jpeg = array_to_compressed(grey, "png", Header(stamp=Time(seconds=5).to_msg()))
    png_said_jpeg.format = "jpeg"
    truncated = array_to_compressed(grey, "jpeg", Header(stamp=Time(seconds=6).to_msg()))
    truncated.data = bytes(truncated.data)[:64]

    def failed() -> int:
        return service.snapshot()["classify"]["totals"]["failed"]

    try:
        assert _spin_until(container, lambda: pub.get_subscription_count() >= 1, 10)
        for msg in (png_said_jpeg, truncated):
            pub.publish(msg)
            _spin_until(container, lambda: False, 0.2)
        assert _spin_until(container, lambda: classify.counters["rejected"] == 1 and failed() == 1, 20), \
            (classify.counters, failed())
        container.spin(duration_s=60)  # the bag, to its end
    finally:
        container.shutdown()
    assert container.player.published == 15 and classify.counters["published"] >= 10, classify.counters
    assert failed() == 1 and service.snapshot()["classify"]["totals"]["done"] == classify.counters["published"]


def test_results_carry_class_names_a_full_size_mask_and_annotated_images(tmp_path, small_bag, ros_domain):
    """A labels file names the classes; the mask comes at the image's size; annotated images come
    at most annotated_hz, with the result drawn on the frame."""
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"thing {i}\n" for i in range(990)) + "\n")  # 1000 ids, the last ten unnamed
    cfg = _with(_with(_config(tmp_path), "mobilenet_v3_small", f"labels: {labels}", "annotated_hz: 4.0"),
                "seg_net", "annotated_hz: 4.0")
    container = Container(ContainerOptions(cfg, bag=str(small_bag), domain_id=ros_domain))
    node = container.node
    heard = {name: [] for name in ("classes", "masks", "drawn", "drawn_seg")}
    node.create_subscription(InferenceResult, "/aaron/classify/result", heard["classes"].append, 50)
    node.create_subscription(Image, "/aaron/segment/result/mask", heard["masks"].append, 50)
    node.create_subscription(Image, "/aaron/classify/result/annotated", heard["drawn"].append, 50)
    node.create_subscription(Image, "/aaron/segment/result/annotated", heard["drawn_seg"].append, 50)
    try:
        container.spin(duration_s=60)  # the 2 s bag at 10 fps, to its end
        _spin_until(container, lambda: False, 0.5)
    finally:
        container.shutdown()
    r = heard["classes"][0]
    assert len(r.class_names) == len(r.class_ids) == 5
    assert all(n == (f"thing {i}" if i < 990 else "") for n, i in zip(r.class_names, r.class_ids))
    assert {(m.height, m.width) for m in heard["masks"]} == {(120, 160)}  # the bag's size, not the model's
    for drawn in (heard["drawn"], heard["drawn_seg"]):
        assert 2 <= len(drawn) <= 10 and {(d.encoding, d.height, d.width) for d in drawn} == {("rgb8", 120, 160)}
    # The mask overlay changed the frame: an annotated image is not the camera's image.
    first = heard["drawn_seg"][0]
    frames = {np.asarray(f[1]).tobytes() for f in sample_frames(width=160, height=120, fps=10.0, seconds=2.0)}
    assert bytes(first.data) not in frames


def test_a_component_serves_its_own_weights_with_a_kernel_bag_built_from_them(tmp_path, ros_domain):
    """`weights` in the parameter file, and `compile --weights` for its bag: the results are the
    weights' own, and the bag fits them (a bag of other weights would not)."""
    import torch

    from aaron_ros.cli import main
    from aaron_ros.models import build_model, top_k_classes
    from aaron_ros.ros.image_conversions import image_to_tensor

    own = build_model("mobilenet_v3_small", seed=5)
    weights = tmp_path / "mine.pt"
    torch.save(own.model.state_dict(), weights)
    bags = tmp_path / "bags"
    assert main(["compile", "--model", "mobilenet_v3_small", "--weights", str(weights), "--out", str(bags),
                 "--backends", "eager", "--kinds", "compute", "--reps", "2", "--budget-s", "30",
                 "--min-stage-ms", "0", "--no-progress"]) == 0
    cfg = _with(_config(tmp_path, components="[classify]"), "mobilenet_v3_small", f"weights: {weights}")
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "no_bags"), str(bags)))
    container = Container(ContainerOptions(cfg, domain_id=ros_domain))
    results = []
    container.node.create_subscription(InferenceResult, "/aaron/classify/result", results.append, 10)
    pub = container.node.create_publisher(Image, "/cam/image", 10)
    image = array_to_image(np.asarray(next(iter(sample_frames(160, 120, fps=10.0, seconds=0.1)))[1]), "rgb8")
    try:
        assert container.coordinator.service.bags["mobilenet_v3_small"].fallback_reason is None
        assert _spin_until(container, lambda: pub.get_subscription_count() >= 1, 10)
        pub.publish(image)
        assert _spin_until(container, lambda: results, 30)
    finally:
        container.shutdown()
    with torch.inference_mode():
        expect = top_k_classes(own.run_whole(image_to_tensor(image, (224, 224))))
    assert list(results[0].class_ids) == expect.class_ids.tolist()
    assert main(["compile", "--model", "resnet18,tiny_yolo", "--weights", str(weights), "--out", str(bags)]) == 2


def test_without_a_real_standard_error_the_container_runs_the_single_threaded_executor(tmp_path, ros_domain, capsys):
    """EventsExecutor enables faulthandler on sys.stderr, which fails where that is no file (here:
    pytest's capsys; elsewhere a notebook): the container says so and runs the other executor."""
    from rclpy.executors import SingleThreadedExecutor

    cfg = _config(tmp_path, components="[classify]")
    cfg.write_text(cfg.read_text().replace("components: [classify]", "components: [classify]\n    executor: events"))
    container = Container(ContainerOptions(cfg, domain_id=ros_domain))
    try:
        assert isinstance(container.executor, SingleThreadedExecutor)
    finally:
        container.shutdown()


def test_run_says_a_missing_bag_or_video_before_any_model_loads(tmp_path, capsys):
    """The bag is checked first: here the one component would fail to load (its labels file is
    missing), and that would end the run first if the bag were checked later."""
    from aaron_ros.cli import main

    cfg = _with(_config(tmp_path, components="[classify]"), "mobilenet_v3_small", f"labels: {tmp_path / 'none.txt'}")
    assert main(["run", str(cfg), "--bag", str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert main(["run", str(cfg), "--camera", str(tmp_path / "drive.mp4")]) == 2  # a video file, not there
    assert "drive.mp4: no such file" in capsys.readouterr().err


def test_ros_args_two_namespaced_containers_side_by_side_with_a_remap_and_a_parameter(tmp_path, ros_domain,
                                                                                      ros_context):
    """`--ros-args` reach every node, as for any ROS 2 executable (and as `ros2 launch` passes
    them, with its node-name remap, which is left out). Two containers on one domain, in /car1 and
    /car2, hear only their own camera and answer on their own topics and services; a remap moves
    car2's camera; `-p` sets the coordinator's policy over the file's."""
    cfg = _config(tmp_path, components="[classify]")
    cfg.write_text(cfg.read_text().replace("input_topic: /cam/image", "input_topic: cam/image"))
    car1 = Container(ContainerOptions(cfg, domain_id=ros_domain, ros_args=[
        "-r", "__node:=aaron_container", "-r", "__ns:=/car1", "-p", "policy:=priority"]))
    car2 = Container(ContainerOptions(cfg, domain_id=ros_domain, ros_args=[
        "-r", "__ns:=/car2", "-r", "cam/image:=front/image"]))
    src = rclpy.create_node("camera_source", context=ros_context)
    pubs = {name: src.create_publisher(Image, name, 10)
            for name in ("/car1/cam/image", "/car2/cam/image", "/car2/front/image")}
    heard = {car: [] for car in ("car1", "car2")}
    for car, got in heard.items():
        src.create_subscription(InferenceResult, f"/{car}/aaron/classify/result", got.append, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(src)

    def spin_until(cond, timeout=30.0) -> bool:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            for ex in (car1.executor, car2.executor, executor):
                ex.spin_once(timeout_sec=0.02)
        return cond()

    image = array_to_image(np.asarray(next(iter(sample_frames(160, 120, fps=10.0, seconds=0.1)))[1]), "rgb8")
    try:
        assert car1.coordinator.get_fully_qualified_name() == "/car1/aaron_coordinator"
        assert car1.node.get_name() == "aaron_container" and car2.node.get_namespace() == "/car2"
        assert car1.coordinator.service.policy_name == "priority" and car2.coordinator.service.policy_name == "aaron"
        assert spin_until(lambda: all(p.get_subscription_count() >= 1 for n, p in pubs.items()
                                      if n != "/car2/cam/image"))
        assert pubs["/car2/cam/image"].get_subscription_count() == 0  # remapped away
        for i in range(3):
            image.header.stamp = Time(seconds=10 + i).to_msg()
            for p in pubs.values():
                p.publish(image)
            spin_until(lambda: False, 0.3)
        assert spin_until(lambda: len(heard["car1"]) >= 3 and len(heard["car2"]) >= 3)
        services = {name for name, _ in src.get_service_names_and_types()}
        assert {"/car1/aaron/set_policy", "/car2/aaron/set_policy"} <= services
    finally:
        car1.shutdown()
        car2.shutdown()
        executor.shutdown()
    # Each heard its own camera once per image, and nothing from the other car's topics.
    assert car1.components["classify"].counters["received"] == 3
    assert car2.components["classify"].counters["received"] == 3
    assert len(heard["car1"]) == len(heard["car2"]) == 3


def test_parameters_given_on_the_command_line_reach_their_nodes_in_a_namespace(tmp_path, ros_domain):
    """Under `-r __ns:=/car1`, rcl matches `-p classify:...` only in the root namespace, refuses
    `-p /car1/classify:...` (the process died with RCLError), and reads a `--params-file`'s plain
    `classify:` as `/classify`: each is read here as the node it names."""
    cfg = _config(tmp_path, components="[classify]")
    extra = tmp_path / "extra.yaml"
    extra.write_text("classify:\n  ros__parameters:\n    overload: keep_latest\n")
    car1 = Container(ContainerOptions(cfg, domain_id=ros_domain, ros_args=[
        "-r", "__ns:=/car1", "-p", "classify:deadline_ms:=40.0", "-p", "/car1/classify:max_rate_hz:=7.0",
        "-p", "/car2/classify:deadline_ms:=90.0", "--params-file", str(extra)]))
    try:
        node = car1.components["classify"]
        assert node.get_fully_qualified_name() == "/car1/classify"
        values = {p.name: p.value for p in node.get_parameters(["deadline_ms", "max_rate_hz", "overload"])}
        assert values == {"deadline_ms": 40.0, "max_rate_hz": 7.0, "overload": "keep_latest"}  # not car2's 90
    finally:
        car1.shutdown()


def test_the_command_line_the_launch_file_builds_runs_the_container_in_its_namespace(tmp_path, ros_domain,
                                                                                     ros_context):
    """What `ros2 launch aaron_ros aaron.launch.py namespace:=/car1 duration:=8` starts: its
    arguments (empty ones for bag, camera and policy), then launch_ros's --ros-args. The status
    comes on /car1/aaron/status, and `ros2 param set /car1/aaron_coordinator policy priority` from
    this other process switches the policy."""
    from aaron_ros.msg import CoordinatorStatus

    cfg = _config(tmp_path, components="[classify]")
    node = rclpy.create_node("listener", context=ros_context)
    heard = []
    node.create_subscription(CoordinatorStatus, "/car1/aaron/status", heard.append, 10)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aaron_ros.cli", "run", str(cfg), "--bag", "", "--camera", "", "--policy", "",
         "--duration", "8", "--no-table", "--ros-args", "-r", "__node:=aaron_container", "-r", "__ns:=/car1",
         "--log-level", "info"],
        env={**ENV, "ROS_DOMAIN_ID": str(ros_domain)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)

    def spin_until(cond, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        return cond()

    try:
        assert spin_until(lambda: heard, 40)
        # A live parameter set from this other process, over DDS: the policy follows.
        client = AsyncParameterClient(node, "/car1/aaron_coordinator")
        assert client.wait_for_services(timeout_sec=10)
        future = client.set_parameters([Parameter("policy", value="priority")])
        assert spin_until(future.done, 10) and future.result().results[0].successful
        assert spin_until(lambda: heard[-1].policy == "priority", 10)
    finally:
        out, _ = proc.communicate(timeout=60)
        executor.shutdown()
    assert heard[0].policy == "aaron", out
    assert proc.returncode == 0 and "__node:=aaron_container left out" in out, out
    # No camera was started: the summary says why the critical task heard nothing, naming its topic.
    assert "WARN classify: no publisher on its input topic /cam/image" in out, out
    assert "critical component(s) received no frame: classify" in out, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_models_load_stops_the_run_with_the_shells_code(tmp_path, ros_domain, sig):
    """Ctrl-C (130) or SIGTERM (143) while the components load: the run stops there, without a
    traceback, instead of loading on and exiting 0."""
    cfg = _config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "aaron_ros.cli", "run", str(cfg), "--no-table"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**ENV, "ROS_DOMAIN_ID": str(ros_domain)})
    lines = []
    for line in proc.stdout:  # the first component is loaded: the second one's model is loading
        lines.append(line)
        if "[classify]" in line:
            break
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run did not stop after the signal")
    out = "".join(lines) + out
    assert proc.returncode == 128 + sig, out
    assert "container up" not in out and "Traceback" not in out, out


def test_a_lifecycle_manager_in_another_process_brings_the_container_up_and_down(tmp_path, ros_domain):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    proc = subprocess.Popen([sys.executable, "-m", "aaron_ros.cli", "run", str(_config(tmp_path)), "--no-table",
                             "--ros-args", "-p", "autostart:=false"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**ENV, "ROS_DOMAIN_ID": str(ros_domain)})
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain)
    node = rclpy.create_node("lifecycle_manager", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    change = node.create_client(ChangeState, "/aaron_container/change_state")
    get = node.create_client(GetState, "/aaron_container/get_state")
    camera = node.create_publisher(Image, "/cam/image", qos_profile_sensor_data)
    results: list = []
    node.create_subscription(InferenceResult, "/aaron/classify/result", results.append, 10)
    health: list = []  # classify's diagnostic messages
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda a: health.extend(
        d.message for d in a.status if d.name == "aaron_ros: classify"), 10)
    frame = array_to_image(np.full((120, 160, 3), 90, np.uint8), "rgb8")

    def serve(seconds: float, until=lambda: False) -> None:
        """Publish camera frames at 10 Hz while spinning, for `seconds` or until `until()`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            frame.header.stamp = node.get_clock().now().to_msg()
            camera.publish(frame)
            executor.spin_once(timeout_sec=0.1)

    def call(client, request):
        assert client.wait_for_service(timeout_sec=60), "the container offers no lifecycle service"
        future = client.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=120)
        return future.result()

    def state() -> str:
        return call(get, GetState.Request()).current_state.label

    def transition(label: str) -> bool:
        return call(change, ChangeState.Request(transition=Transition(label=label))).success

    try:
        assert state() == "unconfigured"
        serve(1.5)
        assert not results  # no model is loaded, nothing hears the camera
        assert transition("configure") and state() == "inactive"
        serve(5, until=lambda: health)
        assert not results  # loaded, but not taking frames
        assert health and health[-1].startswith("inactive"), health  # not taken for a dead camera
        assert transition("activate") and state() == "active"
        serve(30, until=lambda: len(results) >= 3)
        assert len(results) >= 3
        assert transition("deactivate") and state() == "inactive"
        health.clear()
        serve(5, until=lambda: health)  # what was in flight ends meanwhile
        assert health and health[-1].startswith("inactive"), health
        heard = len(results)
        serve(2.0)
        assert len(results) == heard  # no frame taken since
        assert transition("cleanup") and state() == "unconfigured"
        assert transition("configure") and transition("activate")  # models loaded again
        serve(30, until=lambda: len(results) >= heard + 3)
        assert len(results) >= heard + 3
        assert transition("shutdown")
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["classify"])
        received, on_time, late, dropped, failed, rejected, limited = (int(v) for v in row[8:15])
        assert on_time + late + dropped + failed + rejected + limited == received > 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()


def test_a_topic_read_as_two_types_leaves_one_component_out_and_the_others_serve(tmp_path, small_bag, ros_domain):
    """segment reads /cam/image/compressed as raw images, signs reads /cam/image with
    image_transport compressed, the same topic as CompressedImage: DDS refuses the second type in
    one process. That component takes no frame and says why; the container serves the others."""
    cfg = _config(tmp_path, components="[classify, segment, signs]", segment_topic="/cam/image/compressed",
                  extra="""\
        signs:
          ros__parameters:
            model: mobilenet_v3_small
            image_transport: compressed
            deadline_ms: 300.0
        """)
    container = Container(ContainerOptions(cfg, bag=str(small_bag), domain_id=ros_domain))
    try:
        assert container.state == "active"
        why = container.coordinator.not_subscribed["signs"]
        assert "/cam/image/compressed" in why and "segment reads it as Image" in why, why
        assert set(container.coordinator.not_subscribed) == {"signs"}
        container.spin(duration_s=60)  # the bag, to its end
        assert container.components["classify"].counters["published"] > 0
        health = {t.task: t for t in container.coordinator.task_statuses()}
        assert health["signs"].level == ERROR and "could not be subscribed" in health["signs"].message
        assert "ERROR signs: takes no frame" in summary_table(container)
    finally:
        container.shutdown()


def test_after_cleanup_what_its_bag_player_sent_goes_with_the_ledgers(tmp_path, small_bag, ros_domain):
    """Cleanup frees the components and their ledgers: the frames the container's own player sent
    before are not counted against the next configuration's (they read as lost there)."""
    container = Container(ContainerOptions(_config(tmp_path), bag=str(small_bag), domain_id=ros_domain))
    try:
        container.spin(duration_s=60)  # the bag, to its end
        assert sum(container.published_on().values()) > 0
        container.deactivate()
        assert sum(container.published_on().values()) > 0  # still counted: the ledgers are still here
        container.cleanup()
        assert container.published_on() == {}
    finally:
        container.shutdown()


def test_a_stage_that_never_returns_does_not_hold_the_shutdown(tmp_path, small_bag, ros_domain):
    # `stuck` is a fault injector (test/user_models.py): its model never returns on a camera frame.
    cfg = _config(tmp_path, components="[classify, stuck]", extra="""\
        stuck:
          ros__parameters:
            model: user_models:stuck
            input_size: [16, 16]
            output: raw
            std: [0.001, 0.001, 0.001]
            deadline_ms: 100.0
        bag_player:
          ros__parameters:
            loop: true
        """)
    # With its table (every 5 s into a pipe), whose health lines say the stuck stage.
    proc = subprocess.Popen([sys.executable, "-m", "aaron_ros.cli", "run", str(cfg), "--bag", str(small_bag)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT / "test", env={**ENV, "ROS_DOMAIN_ID": str(ros_domain)})
    lines, said = [], False
    never_said = threading.Timer(30.0, proc.send_signal, (signal.SIGTERM,))
    never_said.start()
    for line in proc.stdout:
        lines.append(line)
        if "ERROR stuck: a stage has run for" in line:  # over 2 s (10 deadlines, at least 2 s)
            said = True
            break
    never_said.cancel()
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the container did not stop within 20 s of SIGTERM: " + "".join(lines))
    out = "".join(lines) + out
    assert said, out
    assert proc.returncode == 128 + signal.SIGTERM, out  # its own shutdown, not the "left without it" exit
    assert "left behind" in out, out
    row = [line.split() for line in out.splitlines() if line.split()[:1] == ["stuck"]][-1]  # the summary's
    received, on_time, late, dropped = (int(v) for v in row[8:12])
    assert received >= 1 and dropped >= 1 and on_time == 0, out  # the stuck frame is counted, dropped


def test_a_run_without_its_critical_component_or_with_a_bag_on_other_topics_says_so(tmp_path, small_bag, ros_domain):
    cfg = _with(_config(tmp_path, segment_topic="/other/image"), "mobilenet_v3_small", "weights: nowhere.pt")
    proc = subprocess.run([sys.executable, "-m", "aaron_ros.cli", "run", str(cfg), "--bag", str(small_bag),
                           "--duration", "3", "--no-table"], capture_output=True, text=True, timeout=120,
                          env={**ENV, "ROS_DOMAIN_ID": str(ros_domain)})
    out = proc.stdout + proc.stderr
    assert "component classify (perception) failed to load" in out, out  # the critical one
    assert "component segment reads /other/image, which the bag does not publish (/cam/image)" in out, out
    assert proc.returncode == 1 and "critical component(s) not loaded: classify" in proc.stderr, out
    # The summary: a row that says so, and why on a line of its own under the table, whole.
    assert any(line.split()[:3] == ["classify", "not", "loaded"] for line in out.splitlines()), out
    assert "nowhere.pt" in out.split("\nERROR classify: not loaded: ")[1].splitlines()[0], out


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_device_asked_of_a_cpu_machine_is_refused_naming_the_key(tmp_path, ros_domain):
    proc = subprocess.run([sys.executable, "-m", "aaron_ros.cli", "run", str(_config(tmp_path)), "--duration", "1",
                           "--no-table", "--ros-args", "-p", "device:=cuda"], capture_output=True, text=True,
                          timeout=120, env={**ENV, "ROS_DOMAIN_ID": str(ros_domain)})
    assert proc.returncode == 2, proc.stderr
    assert "aaron-ros run: error: aaron_coordinator: device 'cuda':" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "kernel bag" not in proc.stdout + proc.stderr  # before any model


def test_run_warns_of_a_domain_whose_discovery_port_another_socket_may_take(tmp_path):
    """Said as the container's node starts, before anything can fail (here: a refused device)."""
    if domain_risk(180) is None:
        pytest.skip("this machine's ephemeral ports do not hold domain 180's discovery port")
    proc = subprocess.run([sys.executable, "-m", "aaron_ros.cli", "run", str(_config(tmp_path)), "--no-table",
                           "--ros-args", "-p", "device:=cuda"], capture_output=True, text=True, timeout=120,
                          env={**ENV, "ROS_DOMAIN_ID": "180"})
    assert proc.returncode == 2, proc.stderr
    assert ("ROS domain 180's discovery port 52400 is in this machine's ephemeral port range" in proc.stderr
            and "ROS 2 advises domains 0-101: set ROS_DOMAIN_ID to one of those" in proc.stderr), proc.stderr


def _status(container: Container, task: str):
    return next(t for t in container.coordinator.task_statuses() if t.task == task)


def _unaccounted(t) -> int:
    return t.received - t.rejected - t.rate_limited - t.dropped - t.failed - t.published


def test_failing_tasks_are_errors_said_once_in_full_and_every_frame_is_counted(tmp_path, ros_domain, capfd):
    # Fault injectors (test/user_models.py, test/user_components.py): a model that raises on every
    # camera frame, and a component whose own callback raises on every image.
    cfg = _config(tmp_path, components="[classify, raising, broken]", extra="""\
        raising:
          ros__parameters:
            model: user_models:raising
            input_size: [16, 16]
            output: raw
            std: [0.001, 0.001, 0.001]
            deadline_ms: 500.0
        broken:
          ros__parameters:
            component: user_components:BrokenCallback
            model: user_models:small_cnn
            input_size: [16, 16]
            output: classes
            deadline_ms: 500.0
        """)
    cfg.write_text(cfg.read_text().replace("components: [classify, raising, broken]",
                                           "components: [classify, raising, broken]\n    executor: single"))
    container = Container(ContainerOptions(cfg, domain_id=ros_domain))
    node = container.node
    pub = node.create_publisher(Image, "/cam/image", qos_profile_sensor_data)
    diags = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    image = array_to_image(np.full((120, 160, 3), 90, np.uint8), "rgb8")
    try:
        assert _spin_until(container, lambda: pub.get_subscription_count() > 0, 10)
        for _i in range(6):
            image.header.stamp = node.get_clock().now().to_msg()
            pub.publish(image)
            _spin_until(container, lambda: False, 0.2)
        assert _spin_until(container, lambda: container.components["classify"].counters["published"] >= 3, 30)
        _spin_until(container, lambda: False, 1.0)  # the last frames end, and a report goes out
        statuses = {t: _status(container, t) for t in ("classify", "raising", "broken")}
    finally:
        container.shutdown()
    out = capfd.readouterr()
    log = out.out + out.err
    for name in ("raising", "broken"):
        t = statuses[name]
        assert t.received >= 3 and t.failed == t.received and t.published == 0, (t.message, t)
        assert t.level == DiagnosticStatus.ERROR[0] and t.message.startswith("every frame failed: RuntimeError: "
                                                                             "injected fault"), t.message
    assert statuses["classify"].published >= 3 and statuses["classify"].level < 2, statuses["classify"]
    assert all(_unaccounted(t) == 0 for t in statuses.values()), statuses
    errors = {s.name: s for d in diags for s in d.status if s.level == DiagnosticStatus.ERROR}
    assert {"aaron_ros: raising", "aaron_ros: broken"} <= errors.keys(), diags[-1:]
    # The first failure of each kind is logged in full, naming its component and where it was raised.
    assert log.count("injected fault: this model raises") >= 1 and log.count("in forward") == 1, log
    assert "[broken]" in log and log.count("in _take") == 1, log
    assert "raising: frame" in log, log


def test_junk_does_not_spend_the_rate_limit_and_a_frozen_stamp_is_paced_by_arrival(tmp_path, ros_domain):
    cfg = _config(tmp_path, components="[classify]")
    container = Container(ContainerOptions(cfg, domain_id=ros_domain))
    node = container.node
    pub = node.create_publisher(Image, "/cam/image", qos_profile_sensor_data)
    good = array_to_image(np.full((120, 160, 3), 90, np.uint8), "rgb8")
    junk = Image(height=1, width=1, encoding="16UC1", step=1, data=bytes(1))  # step too small for 16-bit
    classify = container.components["classify"]
    diags = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    try:
        assert _spin_until(container, lambda: pub.get_subscription_count() > 0, 10)
        # Valid frames at 10 Hz, each behind three junk frames stamped later: at 30 Hz the junk
        # would spend the limit (max_rate_hz 30) before the valid frames came.
        for _i in range(5):
            now = node.get_clock().now()
            for k in range(3):
                junk.header.stamp = (now + Duration(nanoseconds=k * 10_000_000)).to_msg()
                pub.publish(junk)
            good.header.stamp = (now + Duration(nanoseconds=30_000_000)).to_msg()
            pub.publish(good)
            _spin_until(container, lambda: False, 0.1)
        assert _spin_until(container, lambda: classify.counters["received"] >= 20, 10)
        assert classify.counters["rejected"] == 15 and classify.counters["rate_limited"] == 0, classify.counters
        # A frozen stamp: every frame carries the first one's. Paced by arrival (10 Hz, under the
        # limit), none is rate-limited; each after the first is counted and the task warns.
        frozen = node.get_clock().now().to_msg()
        for _i in range(5):
            good.header.stamp = frozen
            pub.publish(good)
            _spin_until(container, lambda: False, 0.1)
        assert _spin_until(container, lambda: classify.counters["received"] >= 25, 10)
        _spin_until(container, lambda: False, 0.5)  # a report goes out
        t = _status(container, "classify")
        assert t.rate_limited == 0 and t.bad_stamps == 4, t
        warned = [s.message for d in diags for s in d.status if s.level == DiagnosticStatus.WARN]
        assert any("frozen or backward stamp" in m for m in warned), warned
    finally:
        container.shutdown()


def test_a_callback_that_raises_is_said_with_its_node_and_the_container_keeps_serving(tmp_path, ros_domain, capfd):
    cfg = _config(tmp_path, components="[classify, ticking]", extra="""\
        ticking:
          ros__parameters:
            component: user_components:RaisingTimer
            model: user_models:small_cnn
            input_size: [16, 16]
            output: classes
            deadline_ms: 500.0
        """)
    container = Container(ContainerOptions(cfg, domain_id=ros_domain))
    try:
        container.spin(duration_s=1.5)
        assert container.context.ok()  # still serving
    finally:
        container.shutdown()
    out = capfd.readouterr()
    log = out.out + out.err
    assert "a callback of ticking failed: RuntimeError: injected fault: this component's timer raises" in log, log
    # In full once (with where it was raised), then one throttled line.
    said = [line for line in log.splitlines() if "a callback of ticking failed" in line]
    assert "failures so far" not in said[0] and "failures so far" in said[1], said
    assert "in _tick" in log[log.index(said[0]):log.index(said[1])], log


DRAIN_LISTENER = """\
        import sys, time, rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from aaron_ros.msg import InferenceResult
        rclpy.init(domain_id=int(sys.argv[1]))
        node = rclpy.create_node("listener")
        heard = {"classify": 0, "segment": 0}
        last = [time.monotonic() + 60]
        def count(task):
            def on(msg):
                heard[task] += 1
                last[0] = time.monotonic()
            return on
        for task in heard:
            node.create_subscription(InferenceResult, f"/aaron/{task}/result", count(task),
                                     QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        print("ready", flush=True)
        while time.monotonic() < last[0] + 4:
            rclpy.spin_once(node, timeout_sec=0.1)
        print(heard["classify"], heard["segment"], flush=True)
    """


def test_results_finished_in_the_drain_reach_a_subscriber_and_match_the_ledger(tmp_path, small_bag, ros_domain):
    """Stopped while frames are in flight: what the summary counts as published (on time + late)
    is what a reliable subscriber in another process heard, per task."""
    container = Container(ContainerOptions(_config(tmp_path), bag=str(small_bag), domain_id=ros_domain))
    try:
        listener = _listener_matched(container, DRAIN_LISTENER, ros_domain,
                                     ("/aaron/classify/result", "/aaron/segment/result"))
        container.spin(duration_s=1.2)  # mid-bag: frames in flight when it stops
    finally:
        container.shutdown()
    out, err = listener.communicate(timeout=60)
    summary = summary_table(container)
    for task, n in zip(("classify", "segment"), out.split()):
        row = next(line.split() for line in summary.splitlines() if line.split()[:1] == [task])
        on_time, late, unaccounted = int(row[9]), int(row[10]), int(row[15])
        assert int(n) == on_time + late > 0 and unaccounted == 0, (task, n, summary, err)
