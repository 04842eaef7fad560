"""One subscription per image topic for all the components of a process.

Taking an image from DDS is the executor thread's largest cost: about 1.4 ms of CPU per 640x480
rgb8 image and subscription on the reference machine, raw or deserialised, with either executor.
With a subscription per component, three components on one camera paid it three times. Here the
first component on a (topic, QoS) makes the subscription, and every component on it hears each
image, deserialised once, in the order they subscribed. An Image is read straight from its bytes
(`image_conversions.image_view`): its pixels are not copied again once taken from DDS.

It also counts the frames lost on the way: DDS numbers each publisher's samples, so a gap in the
numbers a subscription takes is frames the publisher sent that never reached it (dropped by
best-effort delivery, or by a full input queue when the executor falls behind).
"""
from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rclpy.subscription import MessageInfo, Subscription
from sensor_msgs.msg import CompressedImage, Image

from aaron_ros.ros.image_conversions import ImageView, image_view

LOG_THROTTLE_S = 5.0


def input_qos(name: str) -> QoSProfile:
    """sensor_data: best effort, keep a few (a late frame is worth nothing); reliable: depth 5."""
    if name == "sensor_data":
        return qos_profile_sensor_data
    return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class Received:
    """One image as each component on its topic hears it."""

    msg: ImageView | Image | CompressedImage | None  # None: the bytes were no such message (`error` says why)
    error: str
    arrival_ns: int  # wall clock when the executor took it
    taken_ns: int  # wall clock when it was deserialised
    deserialise_cpu_s: float  # the executor thread's CPU time for that
    lost_before: int = 0  # frames of its publisher that never arrived since the one taken before


Listener = Callable[[Received], None]


class _Topic:
    def __init__(self, owner: Node, topic: str, qos: str, msg_type: type):
        self.owner, self.msg_type = owner, msg_type
        self.listeners: list[tuple[Node, Listener]] = []
        self._last_seq: dict[bytes, int] = {}  # per publisher (gid): the last sample number taken
        self.subscription = owner.create_subscription(msg_type, topic, self._on_data, input_qos(qos), raw=True)
        # With the message info (its sample number). rclpy's signature check cannot express what
        # its EventsExecutor does (it passes (data, info) as one tuple), so the type is set here
        # and _on_data takes both forms.
        self.subscription._callback_type = Subscription.CallbackType.WithMessageInfo

    @property
    def alive(self) -> bool:
        return self.subscription in self.owner.subscriptions  # its node was not destroyed

    def _lost_before(self, info: MessageInfo | None) -> int:
        """Samples of this one's publisher that were never taken, since the last one taken."""
        seq = info.get("publication_sequence_number") if info else None
        if seq is None:  # an RMW that does not number samples: nothing to count
            return 0
        gid = (info.get("publisher_gid") or {}).get("data", b"")
        last = self._last_seq.get(gid)
        self._last_seq[gid] = seq
        return max(0, seq - last - 1) if last is not None else 0

    def _read(self, data: bytes) -> ImageView | Image | CompressedImage:
        if self.msg_type is Image:
            try:
                return image_view(data)  # its pixels stay where they are
            except ValueError:
                pass  # another encoding of the bytes, or junk: rclpy reads it or says why not
        return deserialize_message(data, self.msg_type)

    def _on_data(self, data: bytes | tuple, info: MessageInfo | None = None) -> None:
        arrival_ns, cpu = time.time_ns(), time.thread_time()
        if info is None and isinstance(data, tuple):  # EventsExecutor: (data, info) as one argument
            data, info = data
        try:
            msg, error = self._read(data), ""
        except Exception as exc:  # bytes that are no such message at all
            msg, error = None, f"cannot deserialise: {exc}"
        got = Received(msg, error, arrival_ns, time.time_ns(), time.thread_time() - cpu, self._lost_before(info))
        for node, listener in self.listeners:
            try:
                listener(got)
            except Exception as exc:  # one component's fault never starves the others
                node.get_logger().error(f"handling an image on {self.subscription.topic_name} failed: "
                                        f"{type(exc).__name__}: {exc}", throttle_duration_sec=LOG_THROTTLE_S)


# Per ROS context (a process may hold several, as the tests do), per (resolved topic, QoS name,
# message type).
_TOPICS: weakref.WeakKeyDictionary[Context, dict[tuple[str, str, type], _Topic]] = weakref.WeakKeyDictionary()


def subscribe_images(node: Node, topic: str, qos: str, listener: Listener,
                     msg_type: type = Image) -> Subscription:
    """Make `listener` hear every image (`msg_type`: Image or CompressedImage) on `topic` (resolved
    in `node`'s namespace) with QoS `qos` (see `input_qos`), sharing one subscription with the
    other nodes of the context on the same topic, QoS and type. The subscription lives on the
    first such node still alive; returned for its topic name and publisher count."""
    topics = _TOPICS.setdefault(node.context, {})
    key = (node.resolve_topic_name(topic), qos, msg_type)
    # One process's participant holds one type per topic: DDS would refuse the subscription.
    if other := next((t for (name, _, kind), t in topics.items() if name == key[0] and kind is not msg_type
                      and t.alive and t.listeners), None):
        raise ValueError(f"{key[0]}: read as {msg_type.__name__} here, but {other.listeners[0][0].get_name()} reads it "
                         f"as {other.msg_type.__name__}: one topic carries one message type (image_transport: "
                         "compressed reads <topic>/compressed)")
    shared = topics.get(key)
    if shared is None or not shared.alive:
        shared = topics[key] = _Topic(node, key[0], qos, msg_type)
    shared.listeners.append((node, listener))
    return shared.subscription


def unsubscribe_images(node: Node) -> None:
    """`node` hears no more images (call it before destroying the node)."""
    for shared in _TOPICS.get(node.context, {}).values():
        shared.listeners = [(n, fn) for n, fn in shared.listeners if n is not node]
