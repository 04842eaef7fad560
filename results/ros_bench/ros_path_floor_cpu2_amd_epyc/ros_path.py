"""The least CPU the f1tenth container's ROS side can cost per frame on this machine: the camera
images taken and the results published, and nothing else (no coordinator, no model, no host work,
no hand-off between threads).

As in `aaron-ros bench`: the sample bag played by `aaron-ros play` in its own process, Fast DDS
with the transports the bench sets, rclpy's EventsExecutor, one raw subscription shared by the
three tasks (`shared_input`, the Image read as a view). For each image, each task publishes what
its component does: an InferenceResult with its 11 timed parts (the detector 20 of 30 frames, as
its rate limit lets through), and with `--masks` segmentation also a mask of the image's size (what
the container makes while a node reads the masks; in `aaron-ros bench` none does). Detector and signs
publish their vision_msgs message where vision_msgs is installed (not from the PyPI wheels).
Reported: CPU per frame a task received (three per image), by thread: the executor thread, and
Fast DDS's own; and the player's process per image it published.

From the repository's root:

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA .venv/bin/python \\
        results/ros_bench/ros_path_floor_cpu2_amd_epyc/ros_path.py [--masks]
"""
import os
import subprocess
import sys
import time

import numpy as np
import rclpy
from rclpy.experimental import EventsExecutor
from sensor_msgs.msg import Image

from aaron_ros.common.cpu import MAIN_THREAD, thread_cpu
from aaron_ros.msg import FrameTime, InferenceResult
from aaron_ros.ros import vision
from aaron_ros.ros.image_conversions import mask_to_image
from aaron_ros.ros.shared_input import subscribe_images

MASKS = "--masks" in sys.argv[1:]
BAG = "data/sample_bag"
DOMAIN = 91
TASKS = (("detector", "detections", InferenceResult.KIND_DETECTIONS),
         ("signs", "classes", InferenceResult.KIND_CLASSES),
         ("segmentation", "mask", InferenceResult.KIND_MASK))
PARTS = [f"part{i}" for i in range(11)]
SKIP = 10  # images before the CPU is read: the player's start and the first allocations

rclpy.init(domain_id=DOMAIN)
node = rclpy.create_node("ros_path_floor")
images = [0]
pubs = {}
for name, kind, _ in TASKS:
    vt = vision.message_type(kind)
    pubs[name] = (node.create_publisher(InferenceResult, f"{name}/result", 10),
                  node.create_publisher(Image, f"{name}/result/mask", 10) if kind == "mask" and MASKS else None,
                  node.create_publisher(vt, f"{name}/result/{vision.SUFFIX[kind]}", 10) if vt else None)


def listener(name: str, kind: str, code: int):
    result, mask_pub, vision_pub = pubs[name]

    def heard(got) -> None:
        if name == "detector" and images[0] % 3 == 2:  # 20 of the camera's 30 frames
            return
        msg = got.msg
        out = InferenceResult(header=msg.header, task=name, model="m", deadline_ms=50.0, kind=code)
        out.frame, out.latency_ms, out.queueing_ms, out.input_delay_ms = images[0], 20.0, 1.0, 2.0
        out.deadline_met, out.kernel_version = True, "00_stem:onnxruntime:t2"
        out.timing = [FrameTime(part=p, wall_ms=1.0, cpu_ms=0.5) for p in PARTS]
        if kind == "mask" and MASKS:
            out.mask_topic = mask_pub.topic_name
            mask_pub.publish(mask_to_image(np.zeros((msg.height, msg.width), np.uint8), msg.header))
        elif kind != "mask":
            out.class_ids, out.scores = [1, 2, 3], [0.9, 0.5, 0.3]
            if kind == "detections":
                out.boxes = [10.0, 20.0, 110.0, 220.0] * 3
            if vision_pub is not None:
                vision_pub.publish(vision.to_vision(msg.header, kind, out.class_ids, out.scores,
                                                    np.array(out.boxes, np.float32).reshape(-1, 4), []))
        result.publish(out)
    return heard


def count(got) -> None:
    images[0] += 1


subscribe_images(node, "camera/image_raw", "sensor_data", count)
for name, kind, code in TASKS:
    subscribe_images(node, "camera/image_raw", "sensor_data", listener(name, kind, code))
executor = EventsExecutor()
executor.add_node(node)
player = subprocess.Popen([sys.executable, "-m", "aaron_ros.cli", "play", BAG],
                          env={**os.environ, "ROS_DOMAIN_ID": str(DOMAIN)},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
start = last = None
read_at = 0.0
while player.poll() is None:
    executor.spin_once(timeout_sec=0.05)
    if start is None and images[0] >= SKIP:
        start = images[0], thread_cpu(os.getpid()), thread_cpu(player.pid)
    elif start is not None and time.monotonic() >= read_at:  # the player's CPU, while it is up
        last, read_at = (images[0], thread_cpu(player.pid)), time.monotonic() + 1.0
until = time.monotonic() + 1.0
while time.monotonic() < until:  # the last images the player sent
    executor.spin_once(timeout_sec=0.05)
end = thread_cpu(os.getpid())


def spent(before: dict, after: dict) -> list[tuple[str, float]]:
    return [(thread, sec - before.get(tid, (thread, 0.0))[1]) for tid, (thread, sec) in after.items()]


n = images[0] - start[0]
by_role = {"executor": 0.0, "dds": 0.0, "other": 0.0}
for thread, sec in spent(start[1], end):
    by_role["executor" if thread == MAIN_THREAD else "dds" if thread.startswith("dds.") else "other"] += sec
player_s = sum(sec for _, sec in spent(start[2], last[1])) / (last[0] - start[0])
received = 3 * n
print(f"{n} images, {received} frames received; masks {'made' if MASKS else 'not made'}; "
      f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}")
for role, sec in by_role.items():
    print(f"  {role:9s} {sec / received * 1e3:.3f} ms per frame received ({sec / n * 1e3:.3f} per image)")
print(f"  total     {sum(by_role.values()) / received * 1e3:.3f} ms per frame received")
print(f"  the player's process: {player_s * 1e3:.3f} ms per image it published")
executor.shutdown()
node.destroy_node()
rclpy.shutdown()
