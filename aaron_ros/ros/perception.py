"""The perception component: one model serving one image topic, through the coordinator.

The executor thread only moves messages: it checks an image and hands it to the coordinator as a
job (and, under the coordinator's lock, starts what the coordinator grants then). The image is
turned into a tensor when the frame's first stage is granted, on that stage's lane (a frame
dropped while waiting costs no conversion), once per image for all the components of the process
reading its topic at the same input size; the output is decoded into the result messages right
after the last stage, on its lane. Both are granted work the coordinator times. Finished frames go
from the lane that ended them to the component's own results thread, which stamps and publishes
them: no lane waits for a publisher, and the executor needs no guard condition (which rclpy's
EventsExecutor cannot wait on).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from aaron_ros.common.cpu import name_os_thread
from aaron_ros.common.paths import KERNEL_BAG_DIR, kernel_bag_root
from aaron_ros.coordinator.service import CoordinatorService
from aaron_ros.coordinator.timing import FramePart, PartTime, coordinator_parts
from aaron_ros.coordinator.types import JobRecord, Outcome
from aaron_ros.msg import FrameTime, InferenceResult
from aaron_ros.ros import vision
from aaron_ros.ros.annotate import annotate, names_of, read_labels, resize_mask
from aaron_ros.ros.failures import FailureLog
from aaron_ros.ros.image_conversions import (
    ImageError,
    ImageView,
    ModelInput,
    SharedConversions,
    array_to_image,
    check_image,
    compressed_format,
    decode_compressed,
    fit,
    image_to_array,
    mask_to_image,
    opencv_on_callers_thread,
)
from aaron_ros.ros.params import COMPONENT, ComponentParams, Transport, params_from_node, set_live
from aaron_ros.ros.shared_input import Received, subscribe_images, unsubscribe_images
from aaron_ros.runtime.executor import HostWork

KINDS = {"classes": InferenceResult.KIND_CLASSES, "detections": InferenceResult.KIND_DETECTIONS,
         "mask": InferenceResult.KIND_MASK, "raw": InferenceResult.KIND_RAW}
LOG_THROTTLE_S = 5.0
RESULTS_JOIN_S = 2.0  # the results thread's last publishing, at shutdown
RESULTS_ACK_S = 1.0  # then for reliable subscribers to acknowledge those results
RECENT_FRAMES = 100
PART_ORDER = {part: i for i, part in enumerate(FramePart)}
SHARED = SharedConversions()  # the process's components share conversions (the container is one process)


@dataclass
class _Frame:
    input_delay_ms: float
    parts: dict[FramePart, PartTime]  # up to the hand-over
    submitted_ns: int  # wall clock at the hand-over (the coordinator's release)
    prepared: HostWork  # the conversion, run inside the first granted stage
    finish: HostWork  # the post-processing, run inside the last granted stage


@dataclass
class _Input:
    """What a frame's conversion learns of its image, for its post-processing."""

    annotate: bool  # this frame's result is drawn on its image (annotated_hz)
    size: tuple[int, int] = (0, 0)  # the image's (height, width), known once it is decoded
    image: np.ndarray | None = None  # the decoded RGB image, kept only to annotate


@dataclass
class _Result:
    """A frame's result messages, built on the lane; the results thread adds the times and publishes."""

    msg: InferenceResult
    mask: Image | None = None
    annotated: Image | None = None
    vision: object | None = None  # its vision_msgs message, where vision_msgs is installed


def _listened(pub) -> bool:
    """Whether `pub` exists and a subscriber reads it now: a mask, an annotated image or a
    vision_msgs message nobody reads is not made (as image_transport's lazy publishers do)."""
    return pub is not None and pub.get_subscription_count() > 0


class RateLimiter:
    """Admits frames at `rate_hz` on average (a token bucket on the frames' own times).

    A frame may come up to 20% of a period early (camera jitter), and the bucket holds 2
    frames, so the credit a dropped or late frame leaves is not lost: 30 fps limited to 20 Hz
    admits two of every three frames, not one of two, and a frame late by up to a period (a
    driver's hiccup, the next one on time again) costs no frame after it. The bucket starts
    full, as it is after any pause: a source's first frame often comes late (a camera starting;
    the bag player's, 11 ms behind its schedule), and with one frame's credit the next, on time,
    came too soon after it."""

    EARLY, BUCKET = 0.2, 2.0

    def __init__(self, rate_hz: float):
        self.rate_hz = rate_hz
        self._credit = self.BUCKET
        self._last: float | None = None

    def admit(self, now: float) -> bool:
        if self._last is not None:
            # max(0, ...): stamps that jump back (a bag looped without restamping) give no credit.
            self._credit = min(self.BUCKET, self._credit + max(0.0, now - self._last) * self.rate_hz)
        self._last = now
        if self._credit >= 1.0 - self.EARLY:
            self._credit -= 1.0
            return True
        return False


class PerceptionComponent(Node):
    """Parameters: `aaron_ros.ros.params.COMPONENT` (README "Configuration")."""

    def __init__(self, name: str, *, service: CoordinatorService, kernel_bag_dir: str = KERNEL_BAG_DIR,
                 context=None, parameter_overrides=None):
        super().__init__(name, context=context, parameter_overrides=parameter_overrides or [])
        opencv_on_callers_thread()
        self.params = p = params_from_node(self, ComponentParams, name)
        self.service = service
        kernel_bag_path = p.kernel_bag_path(kernel_bag_root(kernel_bag_dir))
        spec = p.task_spec()
        self.graph = service.add_task(spec, kernel_bag_path, self._on_finished, p.model_spec)
        kernel_bag = service.bags[spec.model]
        if kernel_bag.fallback_reason:
            self.get_logger().warning(f"{p.model}: eager versions only, {len(kernel_bag.graph.stages)} stage(s) "
                                      f"timed at start ({kernel_bag.fallback_reason})")
        else:
            versions = sum(map(len, kernel_bag.versions.values()))
            self.get_logger().info(f"{p.model}: kernel bag {kernel_bag_path} with {versions} versions")
        self.input_size = tuple(self.graph.input_shape[1:])
        self.model_input = ModelInput(self.input_size, p.mean, p.std, p.channel_order == "bgr", p.resize == "letterbox")
        # The component's share of its task's ledger (the coordinator keeps dropped and failed in
        # its stages): published (done) and, of those, late; failed here (its own code raised on
        # the frame, or the result could not be sent); lost: frames its input's publishers sent
        # that never arrived. converted + shared: frames whose first stage ran (shared: the tensor
        # came from another component); bad_stamps: frames paced by arrival, their stamp frozen
        # or gone back.
        self.counters = {"received": 0, "rejected": 0, "rate_limited": 0, "published": 0, "late": 0,
                         "failed": 0, "lost": 0, "converted": 0, "shared": 0, "bad_stamps": 0}
        self.last_received_ns = 0  # wall clock of the latest frame heard (stale input)
        self.failures = FailureLog(self.get_logger())
        self._last_stamp_ns = 0
        self._limiter = RateLimiter(p.max_rate_hz)
        self._frames: dict[int, _Frame] = {}  # submitted, not yet ended
        self._next_frame = 0
        self._finished: deque[tuple[JobRecord, torch.Tensor | None]] = deque()
        self._lock = threading.Lock()
        self._wake, self._closing = threading.Event(), False
        self._pub = self.create_publisher(InferenceResult, p.result_topic, 10)
        self._mask_pub = (self.create_publisher(Image, f"{p.result_topic}/mask", 10)
                          if self.graph.output_kind == "mask" else None)
        # Resolved (namespace, remaps): where a subscriber finds the masks the results point to.
        self.mask_topic = self._mask_pub.topic_name if self._mask_pub else ""
        self.recent: deque[dict[FramePart, PartTime]] = deque(maxlen=RECENT_FRAMES)  # for a live table
        self.labels = read_labels(p.labels) if p.labels else []
        self._annotated_pub = (self.create_publisher(Image, f"{p.result_topic}/annotated", 10)
                               if p.annotated_hz > 0 else None)
        self._annotate_limiter = RateLimiter(p.annotated_hz) if p.annotated_hz > 0 else None
        vision_type = vision.message_type(self.graph.output_kind)
        self.vision_topic = f"{p.result_topic}/{vision.SUFFIX[self.graph.output_kind]}" if vision_type else ""
        self._vision_pub = self.create_publisher(vision_type, self.vision_topic, 10) if vision_type else None
        self._results = threading.Thread(target=self._publish_loop, name=f"results-{name}", daemon=True)
        self._results.start()
        self.compressed = p.image_transport is Transport.COMPRESSED
        self._sub = None  # the shared subscription, while active
        self.input_topic = self.resolve_topic_name(p.image_topic)  # with namespace and remaps, as sources publish
        self.get_logger().info(
            f"{self.input_topic} -> {p.model} ({p.criticality}, deadline {p.deadline_ms:g} ms, "
            f"at most {p.max_rate_hz:g} Hz) -> {self._pub.topic_name}")
        self.add_on_set_parameters_callback(lambda params: set_live(self, COMPONENT, params, self._apply))

    def _apply(self, new: ComponentParams, changed: dict) -> None:
        """`deadline_ms`, `max_rate_hz` or `overload` set on the running node: the coordinator's
        task follows."""
        self.service.update_task(new.task_spec())
        if "max_rate_hz" in changed:
            self._limiter = RateLimiter(new.max_rate_hz)

    def activate(self) -> None:
        """Take frames: hear the input topic (the container calls it once the coordinator serves)."""
        self._sub = subscribe_images(self, self.params.image_topic, self.params.qos, self._on_image,
                                     CompressedImage if self.compressed else Image)

    def deactivate(self) -> None:
        """Take no more frames; those handed over still end, are published and counted."""
        unsubscribe_images(self)
        self._sub = None

    def counts(self) -> dict[str, int | str]:
        """Its frame counters since the start, the publishers its input is matched with, when it
        last heard a frame, its latest failure's first line, and its input topic."""
        try:
            publishers = self._sub.get_publisher_count() if self._sub is not None else 0
        except Exception:  # rclpy's InvalidHandle: the node is destroyed (shut down), it hears none
            publishers = 0
        return {**self.counters, "input_publishers": publishers, "last_received_ns": self.last_received_ns,
                "last_error": self.failures.last, "input_topic": self.input_topic}

    def destroy_node(self) -> None:
        unsubscribe_images(self)
        if hasattr(self, "_results"):  # else it was stopped while it loaded: no thread to end
            self._closing = True  # what has finished is still published
            self._wake.set()
            self._results.join(timeout=RESULTS_JOIN_S)
            # Results just published may not have reached a reliable subscriber yet; the publisher
            # going now would lose them.
            until = time.monotonic() + RESULTS_ACK_S
            for pub in self.publishers:
                if pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
                    pub.wait_for_all_acked(Duration(seconds=max(0.0, until - time.monotonic())))
        super().destroy_node()

    # -- executor thread: frames in ------------------------------------------------------------
    def _on_image(self, got: Received) -> None:
        """Hears each image on its topic, deserialised once for all the process's components on
        it (`shared_input`). Every frame heard ends in exactly one count of the task's ledger."""
        self.counters["received"] += 1
        self.counters["lost"] += got.lost_before
        self.last_received_ns = got.arrival_ns
        try:
            self._take(got)
        except Exception as exc:  # this component's own fault: the frame fails, counted and said
            self.counters["failed"] += 1
            self.failures(f"{self.params.name}: taking an image", exc)

    def _take(self, got: Received) -> None:
        if got.msg is None:
            self._reject(got.error)
            return
        msg, cpu = got.msg, time.thread_time()
        # Cheap checks first, so that junk never spends the rate limit (a compressed payload is
        # decoded inside the first grant).
        try:
            compressed_format(msg) if self.compressed else check_image(msg)
        except ImageError as exc:
            self._reject(str(exc))
            return
        arrival_ns = got.arrival_ns
        stamp_ns = self._stamp(Time.from_msg(msg.header.stamp).nanoseconds)
        parts = {FramePart.RECEIVE: PartTime(max(0, arrival_ns - stamp_ns) / 1e9 if stamp_ns else 0.0),
                 FramePart.DESERIALISE: PartTime((got.taken_ns - arrival_ns) / 1e9, got.deserialise_cpu_s)}
        mark = got.taken_ns
        # Paced by the camera's stamps, not by arrival: a busy executor delivers frames in
        # bursts, and arrival times would cut good frames from a burst.
        if not self._limiter.admit((stamp_ns or arrival_ns) / 1e9):
            self.counters["rate_limited"] += 1
            return
        self._part(parts, FramePart.ADMISSION, mark, cpu)
        frame = self._next_frame
        self._next_frame += 1
        limiter = self._annotate_limiter
        inp = _Input(limiter is not None and _listened(self._annotated_pub)
                     and limiter.admit((stamp_ns or arrival_ns) / 1e9))
        prepared = HostWork(lambda: self._convert(msg, stamp_ns, inp))
        finish = HostWork(lambda output: self._postprocess(output, msg.header, inp))
        with self._lock:
            self._frames[frame] = _Frame((arrival_ns - stamp_ns) / 1e6 if stamp_ns else 0.0, parts,
                                         time.time_ns(), prepared, finish)
        self.service.submit(self.params.name, frame, prepared, finish, stamp_ns)

    def _stamp(self, stamp_ns: int) -> int:
        """The frame's stamp, or 0 (none: paced by arrival, its conversion not shared) when it is
        frozen or went back: such a stamp would rate-limit every frame after the first, and
        tell different images apart from none."""
        if not stamp_ns:
            return 0
        last, self._last_stamp_ns = self._last_stamp_ns, stamp_ns  # after a jump back, later frames are good again
        if stamp_ns <= last:
            self.counters["bad_stamps"] += 1
            self.get_logger().warning(
                f"{self.input_topic}: a frame stamped {stamp_ns / 1e9:.6f} s, not after the one before "
                f"({last / 1e9:.6f} s): the source's clock is frozen or went back; such frames are paced "
                "by their arrival", throttle_duration_sec=LOG_THROTTLE_S)
            return 0
        return stamp_ns

    def _convert(self, msg: ImageView | Image | CompressedImage, stamp_ns: int, inp: _Input) -> torch.Tensor:
        """On a lane, in the frame's first granted stage: the image decoded (when compressed; a
        payload that does not decode fails the frame, naming why) and made the model's input;
        what post-processing needs of it goes to `inp`."""
        p = self.params

        def make() -> tuple[torch.Tensor, np.ndarray]:
            arr = decode_compressed(msg) if self.compressed else image_to_array(msg, copy=False)
            return self.model_input(arr), arr

        if not stamp_ns:  # no stamp tells two images apart: nothing to share
            (x, arr), made = make(), True
        else:
            key = (self.input_topic, stamp_ns, msg.header.frame_id, self.input_size, p.mean, p.std,
                   p.channel_order, p.resize)
            (x, arr), made = SHARED.get(key, make)
        inp.size = arr.shape[:2]
        if inp.annotate:
            inp.image = arr if arr.shape[2] == 3 else np.repeat(arr, 3, axis=2)  # mono8 drawn in colour
        self.counters["converted" if made else "shared"] += 1
        return x

    def _postprocess(self, output: torch.Tensor, header: Header, inp: _Input) -> _Result:
        """On a lane, right after the frame's last stage: the output decoded into messages, boxes
        mapped back onto the image, a mask resized to it, and the image annotated when due. A
        mask, annotated image or vision_msgs message is made only while a node reads its topic."""
        p = self.params
        out = InferenceResult(header=header, task=p.name, model=self.graph.name, deadline_ms=p.deadline_ms,
                              kind=KINDS[self.graph.output_kind])
        output = output.cpu()
        result = self.graph.postprocess(output) if self.graph.postprocess else output
        mask = None
        send_mask = _listened(self._mask_pub)
        boxes = np.zeros((0, 4), np.float32)
        placed = fit(inp.size, self.input_size, p.resize == "letterbox")
        if self.graph.output_kind == "classes":
            out.class_ids = result.class_ids.tolist()
            out.scores = result.scores.tolist()
        elif self.graph.output_kind == "detections":
            boxes = placed.to_image(result.boxes)
            out.class_ids = result.classes.tolist()
            out.scores = result.scores.tolist()
            out.boxes = boxes.flatten().tolist()
        elif self.graph.output_kind == "raw":
            out.raw = result.detach().float().contiguous().numpy().ravel()
            out.raw_shape = list(result.shape)
        elif send_mask or inp.image is not None:
            mask = np.asarray(result.detach().cpu().numpy(), np.uint8)
            mask = resize_mask(placed.crop(mask, self.input_size), inp.size)
            out.mask_topic = self.mask_topic if send_mask else ""
        if self.labels:
            out.class_names = names_of(out.class_ids, self.labels)
        annotated = None
        if inp.image is not None:
            drawn = annotate(inp.image, out.class_ids, out.scores, out.boxes, mask, self.labels)
            annotated = array_to_image(drawn, "rgb8", header)
        extra = (vision.to_vision(header, self.graph.output_kind, out.class_ids, out.scores, boxes, self.labels)
                 if _listened(self._vision_pub) else None)
        return _Result(out, mask_to_image(mask, header) if send_mask else None, annotated, extra)

    def _reject(self, why: str) -> None:
        self.counters["rejected"] += 1
        self.get_logger().warning(f"rejected an image on {self.params.image_topic}: {why}",
                                  throttle_duration_sec=LOG_THROTTLE_S)

    @staticmethod
    def _part(parts: dict, part: FramePart, since_ns: int, cpu_since: float) -> tuple[int, float]:
        """Close `part` (wall since `since_ns`, this thread's CPU since `cpu_since`); the next starts now."""
        now_ns, cpu = time.time_ns(), time.thread_time()
        parts[part] = PartTime((now_ns - since_ns) / 1e9, cpu - cpu_since)
        return now_ns, cpu

    # -- the coordinator (under its lock, on any thread): a frame ended -------------------------
    def _on_finished(self, rec: JobRecord, output) -> None:
        with self._lock:
            self._finished.append((rec, output))
        self._wake.set()

    # -- the results thread: results out ------------------------------------------------------
    def _publish_loop(self) -> None:
        name_os_thread(threading.current_thread().name)  # the bench counts its CPU apart
        while True:
            self._wake.wait()
            self._wake.clear()
            self._publish_finished()
            if self._closing:
                return

    def _publish_finished(self) -> None:
        while True:
            with self._lock:
                if not self._finished:
                    return
                rec, result = self._finished.popleft()
                frame = self._frames.pop(rec.frame, None)
            if rec.outcome is Outcome.FAILED:  # counted by the coordinator's monitor; the cause is said here
                self.failures(f"{self.params.name}: frame {rec.frame}", rec.error or "")
            if rec.outcome is not Outcome.DONE or frame is None:
                continue  # dropped or failed
            try:
                self._publish(rec, result, frame)
            except Exception as exc:  # a result that cannot be sent must not stop the node; the frame failed
                self.counters["failed"] += 1
                self.failures(f"{self.params.name}: publishing frame {rec.frame}", exc)

    def _publish(self, rec: JobRecord, result: _Result, frame: _Frame) -> None:
        picked_ns = time.time_ns()
        parts = frame.parts | coordinator_parts(rec)
        pre, post = frame.prepared, frame.finish
        parts[FramePart.CONVERSION] = PartTime(pre.seconds, pre.cpu_s)
        parts[FramePart.POST] = PartTime(post.seconds, post.cpu_s)
        model = parts[FramePart.STAGES]  # the lane runs included the conversion and the post-processing
        parts[FramePart.STAGES] = PartTime(model.wall_s - pre.seconds - post.seconds,
                                           model.cpu_s - pre.cpu_s - post.cpu_s)
        ended_ns = frame.submitted_ns + round(rec.latency_s * 1e9)  # the last stage seen, on the wall clock
        parts[FramePart.TO_PUBLISHER] = PartTime(max(0, picked_ns - ended_ns) / 1e9)
        out = result.msg
        out.frame = rec.frame
        out.latency_ms, out.queueing_ms = rec.latency_s * 1e3, (rec.queueing_s or 0.0) * 1e3
        out.input_delay_ms = frame.input_delay_ms
        out.deadline_met = out.latency_ms <= out.deadline_ms  # the deadline it was given, live or not
        out.kernel_version = rec.versions[-1] if rec.versions else ""
        out.timing = [FrameTime(part=str(k), wall_ms=v.wall_s * 1e3, cpu_ms=v.cpu_s * 1e3)
                      for k, v in sorted(parts.items(), key=lambda kv: PART_ORDER[kv[0]])]
        self.recent.append(parts)
        if result.mask is not None:
            self._mask_pub.publish(result.mask)
        if result.annotated is not None:
            self._annotated_pub.publish(result.annotated)
        if result.vision is not None:
            self._vision_pub.publish(result.vision)
        self._pub.publish(out)
        self.counters["published"] += 1
        self.counters["late"] += not out.deadline_met
