"""One subscription per image topic and QoS in a process: every node on it hears each image once,
a listener that raises does not starve the others, bytes that are no Image reach every listener
as an error, and a node that leaves stops hearing."""
from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from aaron_ros.ros.image_conversions import ImageView  # noqa: E402
from aaron_ros.ros.shared_input import subscribe_images, unsubscribe_images  # noqa: E402


def _spin_until(executor, cond, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    return cond()


def test_nodes_on_one_topic_share_one_subscription(ros_context):
    executor = SingleThreadedExecutor(context=ros_context)
    a, b, c, src = (Node(n, context=ros_context) for n in ("a", "b", "c", "src"))
    for n in (a, b, c, src):
        executor.add_node(n)
    heard = {"a": [], "b": [], "c": []}

    def broken(got):
        heard["a"].append(got)
        raise RuntimeError("a's own fault")

    sub = subscribe_images(a, "/img", "sensor_data", broken)
    assert subscribe_images(b, "img", "sensor_data", heard["b"].append) is sub  # the same topic, resolved
    assert subscribe_images(c, "/img", "reliable", heard["c"].append) is not sub  # another QoS: its own
    pub = src.create_publisher(Image, "/img", 10)  # reliable: it matches both QoS

    try:
        assert _spin_until(executor, lambda: pub.get_subscription_count() == 2)  # one per QoS, not one per node
        pub.publish(Image(width=2, height=1, encoding="mono8", step=2, data=bytes([1, 2])))
        assert _spin_until(executor, lambda: heard["b"] and heard["c"])
        assert len(heard["a"]) == len(heard["b"]) == 1 and heard["a"][0] is heard["b"][0]  # deserialised once
        assert list(heard["b"][0].msg.data) == [1, 2] and heard["b"][0].taken_ns >= heard["b"][0].arrival_ns
        assert isinstance(heard["b"][0].msg, ImageView)  # read from its bytes: the pixels never copied

        unsubscribe_images(a)
        pub.publish(Image(width=1, height=1, encoding="mono8", step=1, data=bytes([3])))
        assert _spin_until(executor, lambda: len(heard["b"]) == 2)
        assert len(heard["a"]) == 1  # a left

        # Bytes that are no Image (a CDR header and nothing after it): each listener hears an error.
        pub.publish(b"\x00\x01\x00\x00")
        assert _spin_until(executor, lambda: len(heard["b"]) == 3)
        assert heard["b"][2].msg is None and "cannot deserialise" in heard["b"][2].error
    finally:
        executor.shutdown()
        for n in (a, b, c, src):
            n.destroy_node()


@pytest.mark.parametrize("executor_kind", ["single", "events"])
def test_frames_lost_on_the_way_are_counted_from_the_publishers_sample_numbers(ros_context, executor_kind):
    from aaron_ros.ros.container import make_executor

    executor = make_executor(executor_kind, ros_context, None)
    sink, src = Node("sink", context=ros_context), Node("src", context=ros_context)
    for n in (sink, src):
        executor.add_node(n)
    heard = []
    subscribe_images(sink, "/lossy", "sensor_data", heard.append)  # best effort, keeps the last 5
    pub = src.create_publisher(Image, "/lossy", 10)
    image = Image(width=2, height=1, encoding="mono8", step=2, data=bytes([1, 2]))

    try:
        assert _spin_until(executor, lambda: pub.get_subscription_count() == 1)
        pub.publish(image)
        assert _spin_until(executor, lambda: len(heard) == 1)
        for _ in range(50):  # a burst the executor does not take in time: most are pushed out of the queue
            pub.publish(image)
        _spin_until(executor, lambda: False, 0.5)
        pub.publish(image)  # the next one taken shows the gap
        lost = lambda: sum(g.lost_before for g in heard)  # noqa: E731
        assert _spin_until(executor, lambda: len(heard) + lost() == 52), (len(heard), lost())
        lost = lost()
        assert lost > 0 and len(heard) + lost == 52, (len(heard), lost)
    finally:
        executor.shutdown()
        for n in (sink, src):
            n.destroy_node()
