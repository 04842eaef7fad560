"""What one piece of Python costs, in thread CPU, back to back against after its core idled.

A frame's work outside the models comes in short bursts with idle time between them (the executor
per image, a results thread per frame). This times the same bursts three ways, 80 times a second
as the stress case's results go out: back to back; after sleeping 12.5 ms (the core may idle);
after spinning 12.5 ms (it stays busy). The bursts: plain Python arithmetic; building one
InferenceResult as a component does (10 FrameTime parts); and publishing it to a subscriber in
another process over Fast DDS. From the repository's root, with the demo's environment:

    export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
    PYTHONPATH=. .venv/bin/python results/ros_bench/cold_start_cpu2_amd_epyc/cold_start.py
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

import rclpy
from std_msgs.msg import Header

from aaron_ros.coordinator.timing import FramePart
from aaron_ros.msg import FrameTime, InferenceResult

RATE_HZ = 80.0
N = 400
PARTS = [str(p) for p in FramePart][:-1]  # a result carries every part but the subscriber's


def arithmetic() -> int:
    s = 0
    for i in range(400):
        s += i * i
    return s


def build() -> InferenceResult:
    out = InferenceResult(header=Header(), task="detector", model="tiny_yolo", deadline_ms=50.0, kind=1)
    out.class_ids, out.scores, out.boxes = [1, 2, 3], [0.5, 0.6, 0.7], [float(i) for i in range(12)]
    out.timing = [FrameTime(part=p, wall_ms=1.0, cpu_ms=0.5) for p in PARTS]
    return out


def pause(how: str) -> None:
    if how == "sleep":
        time.sleep(1 / RATE_HZ)
    elif how == "spin":
        end = time.perf_counter() + 1 / RATE_HZ
        while time.perf_counter() < end:
            pass


def timed(burst, how: str) -> float:
    """Median thread CPU (µs) of `burst` over N calls, each after `how`."""
    spent = []
    for _ in range(N):
        pause(how)
        c0 = time.thread_time()
        burst()
        spent.append(time.thread_time() - c0)
    return statistics.median(spent) * 1e6


def subscriber(seconds: float) -> None:
    rclpy.init()
    node = rclpy.create_node("cold_start_sub")
    node.create_subscription(InferenceResult, "cold_start", lambda m: None, 10)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
    except Exception:  # terminated: rclpy's signal handler shut the context down
        return


def main() -> None:
    if sys.argv[1:] == ["sub"]:
        subscriber(60.0)
        return
    sub = subprocess.Popen([sys.executable, __file__, "sub"])
    try:
        rclpy.init()
        node = rclpy.create_node("cold_start_pub")
        pub = node.create_publisher(InferenceResult, "cold_start", 10)
        while pub.get_subscription_count() == 0:
            time.sleep(0.05)
        time.sleep(1.0)
        msg = build()
        bursts = {"arithmetic (400 additions)": arithmetic, "build a result": build,
                  "publish it to another process": lambda: pub.publish(msg)}
        print("| burst | back to back µs | after a 12.5 ms sleep µs | after a 12.5 ms spin µs |")
        print("|---|---|---|---|")
        for name, burst in bursts.items():
            print(f"| {name} | " + " | ".join(f"{timed(burst, how):.1f}" for how in ("none", "sleep", "spin")) + " |")
    finally:
        sub.terminate()
        sub.wait()


if __name__ == "__main__":
    main()
