"""Image sources: sample frames, bags written and read with rosbags, the bag player and the camera
node over real DDS (a private context per test), and the `record` / `play` commands."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rclpy.time import Time
from rosbags.rosbag2 import Writer
from sensor_msgs.msg import CompressedImage, Image

from aaron_ros.cli import main
from aaron_ros.ros.bag_player import BagPlayer
from aaron_ros.ros.camera import CameraNode
from aaron_ros.ros.image_conversions import (
    compressed_format,
    decode_compressed,
    image_to_array,
    restamped,
)
from aaron_ros.ros.record import (
    COMPRESSED_TYPE,
    START_NS,
    TYPESTORE,
    bag_topics,
    frames_from_folder,
    frames_from_video,
    read_image_bag,
    sample_frames,
    write_image_bag,
)
from aaron_ros.ros.source_qos import best_effort_bytes

TOPIC = "/camera/image_raw"
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def numbered_frames(n: int, fps: float, size: tuple[int, int] = (32, 24)):
    """Frames whose every byte is their index: order survives any path through DDS."""
    for i in range(n):
        yield i / fps, np.full((size[1], size[0], 3), i, np.uint8)


@pytest.fixture
def bag(tmp_path) -> Path:
    """20 numbered frames at 20 fps: 0.95 s from first to last."""
    path = tmp_path / "bag"
    assert write_image_bag(path, numbered_frames(20, 20.0), progress=False) == 20
    return path


@pytest.fixture
def spin(ros_context):
    """Spins the nodes given to it in a thread; stops cleanly before the context shuts down."""
    executor = SingleThreadedExecutor(context=ros_context)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.02)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield executor.add_node
    stop.set()
    thread.join()
    executor.shutdown()


class Collector:
    """A subscriber keeping (receive time, header stamp ns, first data byte, encoding) per frame."""

    def __init__(self, context, spin, topic: str = TOPIC, qos: QoSProfile = RELIABLE) -> None:
        self.node = Node("collector", context=context)
        self.frames: list[tuple[float, int, int, str]] = []
        self.last: Image | None = None
        self.node.create_subscription(Image, topic, self._on, qos)
        spin(self.node)

    def _on(self, msg: Image) -> None:
        self.last = msg
        self.frames.append((time.monotonic(), Time.from_msg(msg.header.stamp).nanoseconds,
                            msg.data[0], msg.encoding))

    @property
    def ids(self) -> list[int]:
        return [f[2] for f in self.frames]

    def wait_for(self, n: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.frames) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.frames) >= n


def player(context, bag: Path, **params) -> BagPlayer:
    overrides = [Parameter("bag", value=str(bag)), Parameter("qos", value="reliable")]
    return BagPlayer(context=context, parameter_overrides=overrides + [
        Parameter(k, value=v) for k, v in params.items()])


# --- frames and bags ---------------------------------------------------------


def test_sample_frames_are_deterministic_sized_and_moving():
    a = list(sample_frames(160, 120, fps=10.0, seconds=4.0, seed=0))
    b = list(sample_frames(160, 120, fps=10.0, seconds=4.0, seed=0))
    assert len(a) == 40  # 3 s per photo: the run crosses into a second photograph
    assert [t for t, _ in a] == pytest.approx([i / 10 for i in range(40)])
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for _, f in a)
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
    moves = [np.abs(x.astype(int) - y.astype(int)).mean() for (_, x), (_, y) in zip(a, a[1:])]
    assert min(moves) > 0.5, "a frame did not move"
    other = next(iter(sample_frames(160, 120, fps=10.0, seconds=1.0, seed=1)))[1]
    assert not np.array_equal(a[0][1], other)


@pytest.mark.parametrize("storage, encoding, file", [("mcap", "rgb8", ".mcap"), ("sqlite3", "bgr8", ".db3")])
def test_record_and_read_back(tmp_path, storage, encoding, file):
    frames = list(sample_frames(64, 48, fps=20.0, seconds=1.0))
    out = tmp_path / "bag"
    assert write_image_bag(out, iter(frames), storage=storage, encoding=encoding, frame_id="cam",
                           progress=False) == 20
    # The folder and its bare storage file read the same.
    for path in (out, out / f"bag{file}"):
        msgs = list(read_image_bag(path))
        assert len(msgs) == 20 and {m.topic for m in msgs} == {TOPIC}
        stamps = [m.timestamp_ns for m in msgs]
        assert stamps[0] == START_NS
        assert all(abs((b - a) - 50_000_000) <= 1 for a, b in zip(stamps, stamps[1:]))
        for m, (_, frame) in zip(msgs, frames):
            img = deserialize_message(m.data, Image)
            assert Time.from_msg(img.header.stamp).nanoseconds == m.timestamp_ns
            assert (img.encoding, img.header.frame_id) == (encoding, "cam")
            assert np.array_equal(image_to_array(img), frame)


@pytest.mark.parametrize("encoding", ["png", "jpeg"])
def test_record_compressed_and_read_back(tmp_path, encoding):
    """`record --encoding png|jpeg`: CompressedImage on <topic>/compressed, png lossless."""
    frames = list(sample_frames(64, 48, fps=10.0, seconds=0.5))
    out = tmp_path / "bag"
    assert main(["record", "--out", str(out), "--seconds", "0.5", "--fps", "10", "--size", "64x48",
                 "--encoding", encoding, "--no-progress"]) == 0
    assert bag_topics(out) == {f"{TOPIC}/compressed": COMPRESSED_TYPE}
    msgs = list(read_image_bag(out))
    assert len(msgs) == 5 and {m.msgtype for m in msgs} == {COMPRESSED_TYPE}
    for m, (_, frame) in zip(msgs, frames):
        img = deserialize_message(m.data, CompressedImage)
        assert compressed_format(img) == encoding and Time.from_msg(img.header.stamp).nanoseconds == m.timestamp_ns
        error = np.abs(decode_compressed(img).astype(int) - frame).mean()
        assert error == 0 if encoding == "png" else error < 8, error


def test_record_several_cameras_each_on_its_topic_with_its_frame_id(tmp_path, capsys):
    """`record --topic /front/image_raw,/rear/image_raw`: one bag, each camera its own view and
    frame_id, the frames of one moment on both."""
    out = tmp_path / "two"
    assert main(["record", "--out", str(out), "--seconds", "0.5", "--fps", "10", "--size", "64x48",
                 "--topic", "/front/image_raw,/rear/image_raw", "--no-progress"]) == 0
    msgs = list(read_image_bag(out))
    by_topic = {t: [deserialize_message(m.data, Image) for m in msgs if m.topic == t]
                for t in ("/front/image_raw", "/rear/image_raw")}
    assert [len(v) for v in by_topic.values()] == [5, 5] and len(msgs) == 10
    assert {i.header.frame_id for i in by_topic["/front/image_raw"]} == {"front"}
    assert {i.header.frame_id for i in by_topic["/rear/image_raw"]} == {"rear"}
    front, rear = by_topic.values()
    assert [i.header.stamp for i in front] == [i.header.stamp for i in rear]
    assert not np.array_equal(image_to_array(front[0]), image_to_array(rear[0]))  # two views
    for topics, ids, words in (("/a,/b", "a", "one non-empty frame_id per --topic camera (2)"),
                               ("/a,/b", "a,", "one non-empty frame_id per --topic camera (2)"),
                               ("/a,/a", None, "a camera topic given twice")):
        args = ["record", "--out", str(tmp_path / "bad"), "--topic", topics, "--no-progress"]
        assert main(args + (["--frame-id", ids] if ids else [])) != 0
        assert words in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_write_refuses_to_overwrite_and_leaves_nothing_half_written(tmp_path, bag):
    with pytest.raises(ValueError, match="already exists"):
        write_image_bag(bag, numbered_frames(2, 10.0), progress=False)
    assert write_image_bag(bag, numbered_frames(3, 10.0), progress=False, overwrite=True) == 3
    assert len(list(read_image_bag(bag))) == 3
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a bag folder"):
        write_image_bag(tmp_path / "notes", numbered_frames(2, 10.0), progress=False, overwrite=True)
    assert (tmp_path / "notes" / "keep.txt").exists()

    def broken():
        yield from numbered_frames(2, 10.0)
        raise RuntimeError("camera unplugged")

    with pytest.raises(RuntimeError, match="unplugged"):
        write_image_bag(tmp_path / "broken", broken(), progress=False)
    with pytest.raises(ValueError, match="no frames"):
        write_image_bag(tmp_path / "empty", iter([]), progress=False)
    with pytest.raises(ValueError, match="a bag is a folder"):
        write_image_bag(tmp_path / "x.mcap", numbered_frames(2, 10.0), progress=False)
    assert not any((tmp_path / n).exists() for n in ("broken", "empty", "x.mcap"))


def test_missing_damaged_and_topicless_bags_are_clear_errors(tmp_path, bag):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_image_bag(tmp_path / "nowhere")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "metadata.yaml").write_bytes((bag / "metadata.yaml").read_bytes())
    (cut / "bag.mcap").write_bytes((bag / "bag.mcap").read_bytes()[:5000])
    with pytest.raises(ValueError, match=f"bag {cut} cannot be read"):
        read_image_bag(cut)
    with pytest.raises(ValueError, match="cut.mcap cannot be read"):
        (tmp_path / "cut.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\0" * 100)
        read_image_bag(tmp_path / "cut.mcap")
    with pytest.raises(ValueError, match=rf"has no topic /front; its topics: {TOPIC} \(sensor_msgs/msg/Image"):
        read_image_bag(bag, "/front")

    chat = tmp_path / "chat"
    with Writer(chat, version=9) as writer:
        conn = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=TYPESTORE)
        msg = TYPESTORE.types["std_msgs/msg/String"](data="hi")
        writer.write(conn, START_NS, TYPESTORE.serialize_cdr(msg, "std_msgs/msg/String"))
    with pytest.raises(ValueError, match=r"no sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage topic; "
                                         r"its topics: /chatter \(std_msgs"):
        read_image_bag(chat)
    with pytest.raises(ValueError, match="/chatter in bag .* is std_msgs/msg/String, not sensor_msgs"):
        read_image_bag(chat, "/chatter")


def test_frames_from_video_and_folder(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), (200, 100, 20 * i), np.uint8))  # BGR
    writer.release()
    frames = list(frames_from_video(video))
    assert len(frames) == 10 and frames[1][0] == pytest.approx(0.05)
    assert np.abs(frames[0][1][0, 0].astype(int) - (0, 100, 200)).max() <= 8  # RGB out
    assert list(frames_from_video(video, fps=10.0))[1][0] == pytest.approx(0.1)
    with pytest.raises(FileNotFoundError, match="gone.avi"):
        frames_from_video(tmp_path / "gone.avi")
    (tmp_path / "junk.avi").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="junk.avi cannot be opened"):
        frames_from_video(tmp_path / "junk.avi")

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in (2, 0, 1):
        cv2.imwrite(str(folder / f"f{i}.png"), np.full((8, 8, 3), i, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    frames = list(frames_from_folder(folder, fps=5.0))
    assert [(t, f[0, 0, 0]) for t, f in frames] == [(0.0, 0), (0.2, 1), (0.4, 2)]
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match=f"image folder {tmp_path / 'none'} holds no image files"):
        frames_from_folder(tmp_path / "none", fps=5.0)


# --- the bag player ----------------------------------------------------------


def test_player_waits_only_for_the_topics_it_is_told(ros_context, bag):
    """A container's player waits for subscribers only on the topics its components read: a bag
    topic nobody reads held the container's executor 5 s."""
    p = player(ros_context, bag)
    try:
        (topic,) = p.published_on
        assert p.wait_for_subscribers(1, timeout=5.0, topics=set())  # nothing to wait for: at once
        assert not p.wait_for_subscribers(1, timeout=0.2, topics={topic})  # nobody reads it
    finally:
        p.destroy_node()


def test_player_publishes_every_frame_in_order_with_recorded_spacing(ros_context, spin, bag):
    sub = Collector(ros_context, spin)
    p = player(ros_context, bag, restamp=False)
    assert p.wait_for_subscribers()
    assert p.run(timeout=10) == 20
    assert sub.wait_for(20)
    assert sub.ids == list(range(20))
    span = sub.frames[-1][0] - sub.frames[0][0]
    assert 0.8 * 0.95 <= span < 3.0
    assert [f[1] for f in sub.frames] == [m.timestamp_ns for m in read_image_bag(bag)]
    # Played again from code, as the benchmark does once per policy.
    assert p.run(timeout=10) == 20
    assert sub.wait_for(40) and sub.ids[20:] == list(range(20))


def test_player_rate_start_offset_and_restamp(ros_context, spin, bag):
    sub = Collector(ros_context, spin)
    p = player(ros_context, bag, rate=4, start_offset_s=0.5)  # an integer rate, as YAML gives
    assert p.wait_for_subscribers()
    before = rclpy.clock.Clock().now().nanoseconds
    t0 = time.monotonic()
    assert p.run(timeout=10) == 10
    wall = time.monotonic() - t0
    assert sub.wait_for(10)
    assert sub.ids == list(range(10, 20))  # frame 10 is at exactly 0.5 s
    assert 0.8 * 0.45 / 4 <= wall < 0.8 * 0.45  # 4x faster than recorded
    stamps = [f[1] for f in sub.frames]
    after = rclpy.clock.Clock().now().nanoseconds
    assert all(before <= s <= after for s in stamps) and stamps == sorted(stamps)


def test_player_lead_in_plays_first_with_no_pause_and_says_where_the_measured_part_starts(ros_context, spin, bag):
    sub = Collector(ros_context, spin)
    p = player(ros_context, bag, lead_in_s=0.25)  # 20 fps: the first 5 frames, then the whole bag
    assert p.wait_for_subscribers()
    assert p.run(timeout=10) == 20 and p.lead_in == 5
    assert sub.wait_for(25)
    assert sub.ids == list(range(5)) + list(range(20))
    stamps = [f[1] for f in sub.frames]
    assert stamps == sorted(stamps) and p.measured_from_ns == stamps[5]
    arrivals = [f[0] for f in sub.frames]
    spacing = (arrivals[-1] - arrivals[5]) / 19
    assert arrivals[5] - arrivals[4] < 3 * spacing  # no pause between the lead-in and the bag
    assert 0.8 * 0.95 <= p.seconds < 3.0  # the measured part only
    with pytest.raises(ValueError, match="lead_in_s needs restamp"):
        player(ros_context, bag, lead_in_s=0.25, restamp=False)


def test_player_loops_until_stopped(ros_context, spin, tmp_path):
    path = tmp_path / "short"
    write_image_bag(path, numbered_frames(5, 50.0), progress=False)
    sub = Collector(ros_context, spin)
    p = player(ros_context, path, loop=True)
    assert p.wait_for_subscribers()
    p.start()
    assert sub.wait_for(13)
    assert not p.wait(0)  # still playing
    p.stop()
    assert p.wait(0) and p.published >= 13
    assert sub.ids[:13] == [0, 1, 2, 3, 4] * 2 + [0, 1, 2]


def test_player_remaps_with_sensor_data_qos_and_reads_a_params_file(ros_context_args, bag, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(f"bag_player:\n  ros__parameters:\n    bag: {bag}\n    rate: 2\n"
                      f"    remap: ['{TOPIC}:=/front/image']\n")
    ctx = ros_context_args("--params-file", str(params))
    executor = SingleThreadedExecutor(context=ctx)
    sub = Collector(ctx, executor.add_node, "/front/image", qos_profile_sensor_data)
    p = BagPlayer(context=ctx)
    assert (p.rate, p.remaps, p.restamp) == (2.0, {TOPIC: "/front/image"}, True)
    rate = p.describe_parameter("rate")  # declared from params.BAG_PLAYER (an integer taken for the float)
    assert rate.floating_point_range[0].from_value == 0.0 and rate.description.startswith("playback speed")
    assert p.wait_for_subscribers()
    p.start()
    while not p.wait(0):
        executor.spin_once(timeout_sec=0.01)
    deadline = time.monotonic() + 2
    while len(sub.frames) < 20 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.01)
    executor.shutdown()
    assert p.published == 20
    assert len(sub.frames) >= 18 and sub.ids == sorted(sub.ids)  # best effort: all, in practice


def test_player_errors_name_the_problem(ros_context, bag, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        player(ros_context, tmp_path / "nowhere")
    (tmp_path / "junk.mcap").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.mcap cannot be read"):
        player(ros_context, tmp_path / "junk.mcap")
    with pytest.raises(ValueError, match="node bag_player: parameter rate: must be > 0, got 0"):
        player(ros_context, bag, rate=0.0)
    with pytest.raises(ValueError, match=r"parameter qos: must be one of \['sensor_data', 'reliable'\], got 'fast'"):
        BagPlayer(context=ros_context, parameter_overrides=[Parameter("bag", value=str(bag)),
                                                            Parameter("qos", value="fast")])
    with pytest.raises(ValueError, match=rf"remap of /rear, not an image topic .*: {TOPIC}"):
        player(ros_context, bag, remap=["/rear:=/x"])
    with pytest.raises(ValueError, match="'/a=/b' is not of the form /from:=/to"):
        player(ros_context, bag, remap=["/a=/b"])
    with pytest.raises(ValueError, match="parameter 'bag' is not set"):
        BagPlayer(context=ros_context)


def test_restamped_rewrites_only_the_stamp(bag):
    data = next(read_image_bag(bag)).data
    out = restamped(data, 1_234_567_890_123_456_789)
    a, b = deserialize_message(data, Image), deserialize_message(out, Image)
    assert (b.header.stamp.sec, b.header.stamp.nanosec) == (1_234_567_890, 123_456_789)
    assert len(out) == len(data) and bytes(a.data) == bytes(b.data) and a.header.frame_id == b.header.frame_id


# --- the camera node ---------------------------------------------------------


def blue_clip(tmp_path: Path) -> Path:
    """Six blue-ish 64x48 frames in a video file."""
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    for _ in range(6):
        writer.write(np.full((48, 64, 3), (200, 100, 0), np.uint8))  # BGR
    writer.release()
    return video


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8"])
def test_camera_publishes_a_looped_video_file(ros_context, spin, tmp_path, encoding):
    video = blue_clip(tmp_path)
    sub = Collector(ros_context, spin, qos=qos_profile_sensor_data)
    cam = CameraNode(context=ros_context, parameter_overrides=[
        Parameter("device", value=str(video)), Parameter("rate_hz", value=100),
        Parameter("width", value=32), Parameter("height", value=24),
        Parameter("encoding", value=encoding)])
    assert sub.wait_for(10), f"{len(sub.frames)} frames"  # more than the file holds: it loops
    cam.stop()
    assert cam.error is None and cam.published >= 10
    assert cam.describe_parameter("encoding").additional_constraints == "one of: bgr8, rgb8"
    msg = sub.last
    assert (msg.width, msg.height, msg.encoding, msg.header.frame_id) == (32, 24, encoding, "camera")
    assert np.abs(image_to_array(msg)[0, 0].astype(int) - (0, 100, 200)).max() <= 8


def test_a_video_file_at_rate_zero_plays_at_its_own_frame_rate(ros_context, tmp_path):
    cam = CameraNode(context=ros_context, parameter_overrides=[
        Parameter("device", value=str(blue_clip(tmp_path))), Parameter("rate_hz", value=0.0)])
    cam.stop()
    assert cam.rate_hz == pytest.approx(30.0)  # the clip's, not as fast as it decodes


def test_camera_that_cannot_open_is_a_clear_error(ros_context, tmp_path):
    with pytest.raises(ValueError, match="camera device '.*missing.avi' cannot be opened"):
        CameraNode(context=ros_context, parameter_overrides=[
            Parameter("device", value=str(tmp_path / "missing.avi"))])
    with pytest.raises(ValueError, match="width and height must both be positive or both 0"):
        CameraNode(context=ros_context, parameter_overrides=[Parameter("width", value=320)])


# --- frames too large for best effort -----------------------------------------


def test_best_effort_limit_is_the_measured_one_for_the_transports_in_use():
    assert 522_300 < best_effort_bytes({}) < 540_000  # stock transports: the first arrived, the second not
    assert 8_600_000 < best_effort_bytes({"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}) < 9_030_000
    assert best_effort_bytes({"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}) is None  # not measured: no guess
    assert best_effort_bytes({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) is None


def test_sources_warn_once_per_topic_about_best_effort_frames_too_large_for_another_process(
        ros_context, tmp_path, monkeypatch, capfd):
    # Stock transports, in this process only: its participant is made by the first node below.
    monkeypatch.delenv("FASTDDS_BUILTIN_TRANSPORTS", raising=False)
    vga = tmp_path / "vga"
    write_image_bag(vga, numbered_frames(3, 30.0, size=(640, 480)), progress=False)
    assert player(ros_context, vga, qos="sensor_data").run(timeout=10) == 3
    err = capfd.readouterr().err
    assert err.count("MB that Fast DDS") == 1, err
    assert f"{TOPIC}: frames of 0.92 MB, best effort, are over the 0.52 MB that Fast DDS's stock" in err
    assert "Publish with qos reliable" in err and "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA" in err
    assert player(ros_context, vga, qos="reliable").run(timeout=10) == 3  # reliable carries any size
    small = tmp_path / "small"
    write_image_bag(small, numbered_frames(3, 30.0), progress=False)
    assert player(ros_context, small, qos="sensor_data").run(timeout=10) == 3
    assert "MB that Fast DDS" not in capfd.readouterr().err

    cam = CameraNode(context=ros_context, parameter_overrides=[
        Parameter("device", value=str(blue_clip(tmp_path))), Parameter("rate_hz", value=100),
        Parameter("width", value=640), Parameter("height", value=480)])
    deadline = time.monotonic() + 5
    while cam.published < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    cam.stop()
    err = capfd.readouterr().err
    assert cam.published >= 3 and err.count("MB that Fast DDS") == 1, err
    assert "/camera/image_raw: frames of 0.92 MB" in err


# --- the commands ------------------------------------------------------------


def test_record_and_play_commands(tmp_path, capsys):
    out = tmp_path / "rec"
    args = ["record", "--out", str(out), "--seconds", "1", "--fps", "10", "--size", "64x48",
            "--storage", "sqlite3", "--no-progress"]
    assert main(args) == 0
    assert f"wrote 10 frames of the sample photographs at 64x48 to {out}" in capsys.readouterr().out
    msgs = list(read_image_bag(out / "rec.db3"))
    assert len(msgs) == 10
    assert image_to_array(deserialize_message(msgs[0].data, Image)).shape == (48, 64, 3)
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--seconds", "0.5"]) == 0
    assert len(list(read_image_bag(out))) == 5

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((10, 12, 3), i, np.uint8))
    assert main(["record", "--images", str(folder), "--out", str(tmp_path / "imgs_bag"),
                 "--size", "24x20", "--no-progress"]) == 0
    widths = [deserialize_message(m.data, Image).width for m in read_image_bag(tmp_path / "imgs_bag")]
    assert widths == [24] * 3

    assert main(["play", str(out), "--rate", "5", "--wait-subscribers", "0"]) == 0  # no one listens here
    assert f"published 5 frames of {out}" in capsys.readouterr().out
    assert main(["play", str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
