"""`CameraNode`: publishes frames of an OpenCV source (a camera index or a video file) as
``sensor_msgs/msg/Image``, stamped when read, from a background thread.

Like a camera driver it publishes from construction until ``stop()`` or ``destroy_node()``; a
device that cannot be opened fails the constructor.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
from rclpy.context import Context
from rclpy.exceptions import InvalidTopicNameException
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from aaron_ros.ros.image_conversions import array_to_image
from aaron_ros.ros.params import CAMERA, declare_params
from aaron_ros.ros.source_qos import OversizeWarning, source_qos


class CameraNode(Node):
    """`device` "0", "1", ... is a camera index; anything else a file (looped if `loop`) or a
    stream URL OpenCV can open. Parameters: `aaron_ros.ros.params.CAMERA`."""

    def __init__(self, name: str = "camera", *, context: Context | None = None,
                 parameter_overrides: list[Parameter] | None = None) -> None:
        # Before the node exists: a constructor that fails leaves the node in its context, whose
        # shutdown still calls destroy_node (and so stop()).
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__(name, context=context, parameter_overrides=parameter_overrides)
        p = declare_params(self, CAMERA)
        self.device, topic, self.rate_hz, self.loop = p["device"], p["topic"], p["rate_hz"], p["loop"]
        self.width, self.height, self.frame_id, self.encoding = p["width"], p["height"], p["frame_id"], p["encoding"]
        self.is_file = Path(self.device).is_file()
        source = int(self.device) if self.device.isdigit() else self.device
        self._cap = cv2.VideoCapture(source)
        if not self._cap.isOpened():
            self._cap.release()
            hint = "" if self.is_file or self.device.isdigit() else " (no such file either)"
            raise ValueError(f"{name}: camera device {self.device!r} cannot be opened{hint}")
        if self.is_file:  # rate_hz 0: the file's own rate, not as fast as it decodes
            own = self._cap.get(cv2.CAP_PROP_FPS)
            if own > 0 and not self.rate_hz:
                self.rate_hz = own
            elif own > 0 and abs(self.rate_hz - own) > 0.01 * own:
                self.get_logger().info(f"{self.device} is {own:g} fps; published at {self.rate_hz:g} Hz "
                                       "(rate_hz; 0.0 plays it at its own rate)")
        if self.width and not self.is_file:
            # A request: many cameras then deliver this size natively; frames are resized anyway.
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)

        try:
            self._pub = self.create_publisher(Image, topic, source_qos(p["qos"]))
        except InvalidTopicNameException as exc:
            self._cap.release()
            raise ValueError(f"{name}: bad topic name: {exc}") from None
        self.topic_name = self._pub.topic_name  # resolved; also once the node is destroyed
        self._oversize = OversizeWarning(self.get_logger(), p["qos"])
        self.published = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._capture, name=f"{name}_capture", daemon=True)
        self._thread.start()
        self.get_logger().info(f"publishing {self.device} on {topic} ({self.encoding}, "
                               f"{f'{self.rate_hz:g} Hz' if self.rate_hz else 'source rate'})")

    @property
    def published_on(self) -> dict[str, int]:
        """Frames published, per topic as subscribers resolve it."""
        return {self.topic_name: self.published}

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def destroy_node(self) -> None:
        self.stop()
        super().destroy_node()

    def _read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        if not ok and self.is_file and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        return frame if ok else None

    def _message(self, frame: np.ndarray) -> Image:
        if self.width and frame.shape[:2] != (self.height, self.width):
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
        if self.encoding == "rgb8":
            return array_to_image(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), "rgb8", header)
        # OpenCV's frame is already in bgr8 order: laid out as is and labelled, rather than
        # swapped to RGB here and back again in array_to_image.
        msg = array_to_image(frame, "rgb8", header)
        msg.encoding = "bgr8"
        return msg

    def _capture(self) -> None:
        period = 1.0 / self.rate_hz if self.rate_hz else 0.0
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                frame = self._read()
                if frame is None:
                    if self.is_file:
                        self.get_logger().info(f"{self.device}: end of file")
                    else:
                        self.error = f"{self.device}: no frame (device lost?)"
                        self.get_logger().error(self.error)
                    return
                msg = self._message(frame)
                self._oversize.check(self.topic_name, len(msg.data))
                self._pub.publish(msg)
                self.published += 1
                if period:
                    # A fixed schedule, not sleep(period): decoding time does not slow the rate,
                    # and a late frame does not cause a burst (the schedule skips ahead).
                    next_at = max(next_at + period, time.monotonic())
                    self._stop.wait(next_at - time.monotonic())
        except Exception as exc:  # e.g. the context shut down under us: logged, not a dead thread
            self.error = f"{self.device}: capture stopped: {exc}"
            self.get_logger().error(self.error)
        finally:
            self._cap.release()
