"""What the f1tenth frames' own host work costs at the least, and what the cheapest ways to publish
a result cost, measured alone on one thread: the floor under the ROS bench's "CPU outside the model
stages". Run from the repository root:

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA .venv/bin/python results/ros_bench/host_work_floor_cpu2_amd_epyc/host_work.py

Each piece is timed (thread CPU, median of 40) right after something that evicts the caches, as a
model stage does on a lane before the frame's conversion or post-processing runs.
"""
from __future__ import annotations

import time

import cv2
import numpy as np
import rclpy
import torch
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from aaron_ros.models import build_model
from aaron_ros.models.postprocess import argmax_mask
from aaron_ros.msg import FrameTime, InferenceResult
from aaron_ros.ros.annotate import resize_mask
from aaron_ros.ros.image_conversions import ModelInput, fit, mask_to_image
from aaron_ros.ros.record import sample_frames

# f1tenth.yaml: frames each task serves a second (the detector is rate-limited to 20 of the camera's 30).
SERVED_HZ = {"tiny_yolo": 20.0, "mobilenet_v3_small": 30.0, "seg_net": 30.0}
RECEIVED_HZ = 3 * 30.0  # three components on one 30 Hz camera
IMAGE_HW = (480, 640)
_evict = np.ones(8_000_000, np.float32)  # 32 MB: more than the last-level cache a core gets


def cold_ms(fn, *args, n: int = 40) -> float:
    times = []
    for _ in range(n):
        _evict.__iadd__(1.0)
        c = time.thread_time()
        fn(*args)
        times.append(time.thread_time() - c)
    return float(np.median(times)) * 1e3


def host_work(image: np.ndarray) -> float:
    print("host work per frame served, ms of thread CPU (each right after a cache eviction):")
    per_received = 0.0
    for name, hz in SERVED_HZ.items():
        graph = build_model(name)
        size = graph.input_shape[1:]
        to_input = ModelInput(size)
        with torch.inference_mode():
            x = to_input(image)
            raw = graph.model(x)
        parts = {"conversion": cold_ms(to_input, image), "decode": cold_ms(graph.postprocess, raw)}
        if graph.output_kind == "mask":
            mask = graph.postprocess(raw).numpy()
            placed = fit(IMAGE_HW, size)
            parts["mask to the image's size"] = cold_ms(
                lambda m, p=placed, s=size: resize_mask(p.crop(m, s), IMAGE_HW), mask)
            parts["mask as an Image"] = cold_ms(mask_to_image, resize_mask(mask, IMAGE_HW))
        total = sum(parts.values())
        per_received += total * hz / RECEIVED_HZ
        print(f"  {name:20s} " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()) + f"; sum {total:.3f}")
    print(f"  per frame received (f1tenth rates): {per_received:.3f} ms")
    return per_received


def argmax_ways() -> None:
    """seg_net's decode is an argmax over 19 class planes of 240x320 logits: the ways tried."""
    logits = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 19, 240, 320), dtype=np.float32))
    planes = logits[0].numpy()
    last = np.ascontiguousarray(planes.transpose(1, 2, 0))

    def max_then_compare() -> np.ndarray:  # the package's until the compiled kernel
        best = planes.max(axis=0)
        mask = np.full(best.shape, len(planes) - 1, np.uint8)
        equal = np.empty(best.shape, bool)
        for c in range(len(planes) - 2, -1, -1):
            np.equal(planes[c], best, out=equal)
            np.copyto(mask, np.uint8(c), where=equal)
        return mask

    def one_pass() -> np.ndarray:  # a running maximum and its index, plane by plane
        best, mask = planes[0].copy(), np.zeros(planes.shape[1:], np.uint8)
        greater = np.empty(best.shape, bool)
        for c in range(1, len(planes)):
            np.greater(planes[c], best, out=greater)
            np.maximum(planes[c], best, out=best)
            np.copyto(mask, np.uint8(c), where=greater)
        return mask

    ways = {
        "compiled: one pass, blocks of 512 pixels (the package's, src/host_kernels.c)": lambda: argmax_mask(logits),
        "numpy: the maximum, then one compare per class (the package's before)": max_then_compare,
        "numpy: a running maximum and its index": one_pass,
        "numpy argmax over axis 0": lambda: planes.argmax(axis=0),
        "numpy argmax over the last axis (channels last, the transpose not counted)": lambda: last.argmax(axis=-1),
        "torch argmax over dim 0": lambda: logits[0].argmax(0),
        "OpenCV reduceArgMax": lambda: cv2.reduceArgMax(planes.reshape(len(planes), -1), 0),
    }
    print("seg_net's argmax (19x240x320 float32), ms:")
    for what, fn in ways.items():
        print(f"  {cold_ms(fn):7.3f}  {what}")


def publishing() -> None:
    """What rclpy takes to publish a result with its 11 timed parts, and a VGA mono8 mask."""
    rclpy.init()
    node = rclpy.create_node("host_work_floor")
    try:
        results = node.create_publisher(InferenceResult, "result", 10)
        masks = node.create_publisher(Image, "mask", qos_profile_sensor_data)
        node.create_subscription(InferenceResult, "result", lambda _: None, 10)
        node.create_subscription(Image, "mask", lambda _: None, qos_profile_sensor_data)
        time.sleep(0.5)  # matched

        def result() -> InferenceResult:
            out = InferenceResult(task="segmentation", model="seg_net", deadline_ms=100.0, kind=2)
            out.timing = [FrameTime(part=f"part {i}", wall_ms=1.0, cpu_ms=0.5) for i in range(11)]
            return out

        mask = mask_to_image(np.zeros(IMAGE_HW, np.uint8))
        print("publishing, ms (one subscriber in the process):")
        print(f"  {cold_ms(result):7.3f}  an InferenceResult built with 11 timed parts")
        print(f"  {cold_ms(results.publish, result()):7.3f}  it published")
        print(f"  {cold_ms(masks.publish, mask):7.3f}  a 640x480 mono8 mask published")
    finally:
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _, photo = next(sample_frames(IMAGE_HW[1], IMAGE_HW[0]))
    host_work(photo)
    argmax_ways()
    publishing()
