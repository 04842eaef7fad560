"""`BagPlayer`: replays the image topics (Image or CompressedImage) of a ROS 2 bag with their
recorded timing.

`ros2 bag play` cannot be installed everywhere this package runs, and a benchmark needs to replay
one bag once per policy from code and know when it is done: ``player.run()`` (or ``start()``
then ``wait()``) does that; ``published`` counts the frames of the latest run.

Messages are published as the CDR bytes read from the bag, never as rclpy objects: for a
640x480 rgb8 image, deserialising and publishing took 0.36 ms against 0.13 ms for the raw bytes
(0.16 ms of it the deserialisation alone), and a restamp is a copy with 8 new bytes (0.06 ms).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Collection, Sequence

from rclpy.context import Context
from rclpy.exceptions import InvalidTopicNameException
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image

from aaron_ros.ros.image_conversions import restamped
from aaron_ros.ros.params import BAG_PLAYER, declare_params
from aaron_ros.ros.record import COMPRESSED_TYPE, bag_topics, image_topics, read_image_bag
from aaron_ros.ros.source_qos import OversizeWarning, source_qos

# Longest single sleep: stop() is noticed within this even across a long gap in the bag.
MAX_SLEEP_S = 0.1
# Pause between two passes of a one-frame bag, which has no frame spacing to repeat.
SINGLE_FRAME_LOOP_S = 0.1


def parse_remaps(entries: Sequence[str]) -> dict[str, str]:
    """``["/from:=/to", ...]`` -> {"/from": "/to"}."""
    remaps = {}
    for entry in entries:
        src, sep, dst = entry.partition(":=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"remap {entry!r} is not of the form /from:=/to")
        remaps[src.strip()] = dst.strip()
    return remaps


class BagPlayer(Node):
    """Publishes a bag's image topics at their recorded spacing (scaled by `rate`) from a thread.
    Parameters: `aaron_ros.ros.params.BAG_PLAYER`."""

    def __init__(self, name: str = "bag_player", *, context: Context | None = None,
                 parameter_overrides: list[Parameter] | None = None) -> None:
        # Before the node exists: a constructor that fails leaves the node in its context, whose
        # shutdown still calls destroy_node (and so stop()).
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__(name, context=context, parameter_overrides=parameter_overrides)
        p = declare_params(self, BAG_PLAYER)
        self.bag, self.rate, self.loop, self.start_offset_s = p["bag"], p["rate"], p["loop"], p["start_offset_s"]
        self.restamp, qos, self.lead_in_s = p["restamp"], p["qos"], p["lead_in_s"]
        if not self.bag:
            raise ValueError(f"{name}: parameter 'bag' is not set (a bag folder, .mcap or .db3)")
        if self.lead_in_s and not self.restamp:
            raise ValueError(f"{name}: lead_in_s needs restamp: with the bag's own stamps the lead-in's frames "
                             "would carry the same stamps as the first measured ones")
        self.remaps = parse_remaps(p["remap"])
        # Checks the bag now, so a wrong path fails at start-up and not at the first replay.
        self.topics = image_topics(self.bag)
        if unknown := sorted(set(self.remaps) - set(self.topics)):
            raise ValueError(f"{name}: remap of {', '.join(unknown)}, not an image topic of bag "
                             f"{self.bag}; its image topics: {', '.join(self.topics)}")
        types = bag_topics(self.bag)
        try:
            # A recorded name is published in the player's namespace (relative), as the container's
            # components read it; a remap's target is taken as written.
            self._pubs = {t: self.create_publisher(CompressedImage if types[t] == COMPRESSED_TYPE else Image,
                                                   self.remaps.get(t, t.lstrip("/")), source_qos(qos))
                          for t in self.topics}
        except InvalidTopicNameException as exc:
            raise ValueError(f"{name}: remap to a bad topic name: {exc}") from None

        self._topic_names = {t: pub.topic_name for t, pub in self._pubs.items()}  # also once destroyed
        self._oversize = OversizeWarning(self.get_logger(), qos)
        self._published = dict.fromkeys(self.topics, 0)  # per bag topic, this run, after its lead-in
        self.lead_in = 0  # frames published in the last run's lead-in
        self.measured_from_ns = 0  # the stamp of the last run's first frame after its lead-in
        self.seconds = 0.0  # the last run's, from its start (after the lead-in) to its end
        self.error: Exception | None = None
        self.get_logger().info(
            f"bag {self.bag}: {', '.join(f'{t} -> {self._pubs[t].topic_name}' for t in self.topics)}"
            f" at rate {self.rate}{', looped' if self.loop else ''}")

    @property
    def published(self) -> int:
        """Frames published this run, after its lead-in."""
        return sum(self._published.values())

    @property
    def published_on(self) -> dict[str, int]:
        """Frames published this run, per topic as subscribers resolve it."""
        return {self._topic_names[t]: n for t, n in self._published.items()}

    def wait_for_subscribers(self, count: int = 1, timeout: float = 5.0,
                             topics: Collection[str] | None = None) -> bool:
        """Wait until every output topic (those of `topics`, as subscribers resolve them, when
        given) has `count` subscribers (frames published before a subscriber is matched are lost
        to it); False on timeout."""
        pubs = [p for p in self._pubs.values() if topics is None or p.topic_name in topics]
        deadline = time.monotonic() + timeout
        while any(p.get_subscription_count() < count for p in pubs):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def start(self) -> None:
        """Play the bag from `start_offset_s` in a background thread; `published` restarts at 0."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"{self.get_name()}: already playing {self.bag}")
        self.seconds, self.error, self.lead_in, self.measured_from_ns = 0.0, None, 0, 0
        self._published = dict.fromkeys(self.topics, 0)
        self._stop.clear()
        self._thread = threading.Thread(target=self._play, name=f"{self.get_name()}_play", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends (never, when looping, unless stopped); True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self.wait()

    def run(self, timeout: float | None = None) -> int:
        """Play the bag once, to the end; returns the frames published. Raises what broke the
        replay (a bag damaged past its header), or TimeoutError."""
        self.start()
        if not self.wait(timeout):
            self.stop()
            raise TimeoutError(f"{self.get_name()}: {self.bag} still playing after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.published

    def destroy_node(self) -> None:
        self.stop()
        super().destroy_node()

    def _sleep_until(self, target: float) -> bool:
        """Sleep to the monotonic time `target`; False if stopped first. time.sleep overshoots
        ~0.15 ms here, Event.wait ~0.2 ms: short sleeps, the stop flag checked between."""
        while (left := target - time.monotonic()) > 0:
            if self._stop.is_set():
                return False
            time.sleep(min(left, MAX_SLEEP_S))
        return not self._stop.is_set()

    def _play(self) -> None:
        clock = self.get_clock()
        began = pass_start = time.monotonic()
        lead_in = self.lead_in_s > 0  # this pass is the lead-in: the first lead_in_s seconds played
        try:
            while True:
                first, last, n = None, None, 0
                for msg in read_image_bag(self.bag, start_s=self.start_offset_s):
                    first = msg.timestamp_ns if first is None else first
                    if lead_in and msg.timestamp_ns - first >= self.lead_in_s * 1e9:
                        break
                    if not self._sleep_until(pass_start + (msg.timestamp_ns - first) / 1e9 / self.rate):
                        return
                    data = msg.data
                    if self.restamp:
                        # Stamped as it leaves, as a live camera's frame: latency is now - stamp.
                        stamp_ns = clock.now().nanoseconds
                        data = restamped(data, stamp_ns)
                        if not lead_in and not self.measured_from_ns:
                            self.measured_from_ns = stamp_ns
                    self._oversize.check(self._topic_names[msg.topic], len(data))
                    self._pubs[msg.topic].publish(data)
                    if lead_in:
                        self.lead_in += 1
                    else:
                        self._published[msg.topic] += 1
                    last, n = msg.timestamp_ns, n + 1
                if first is None or not (lead_in or self.loop):
                    return
                # The next pass follows one mean frame spacing after this pass's last frame.
                span = (last - first) / 1e9 / self.rate
                gap = span / (n - 1) if n > 1 else SINGLE_FRAME_LOOP_S
                pass_start += span + gap
                if lead_in:
                    lead_in, began = False, pass_start
        except Exception as exc:  # reported by run() and the log; the thread must not die silently
            self.error = exc
            self.get_logger().error(f"replay of {self.bag} stopped: {exc}")
        finally:
            self.seconds = wall = max(0.0, time.monotonic() - began)
            lead = f" after a lead-in of {self.lead_in} frames" if self.lead_in_s else ""
            self.get_logger().info(f"published {self.published} frames{lead} in {wall:.1f} s "
                                   f"({self.published / max(wall, 1e-9):.1f}/s)")
