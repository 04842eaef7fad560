"""Is a replay's slow start the new player or the pause before it? With a container already
running (`aaron-ros run config/f1tenth.yaml`, same ROS domain), the sample bag is played into it
four ways: (A) a player node's first play, (B) the same node again after 4 s idle, (C) a new
player node, (D) a new `aaron-ros play` process; then, with `--pauses`, 3-s passes of one player
after pauses of 0.3 to 4 s. Printed: the detector's node latency (`latency_ms`) of each pass's
first 8 results, and the pass's median. From the repository's root, with the container started:

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA .venv/bin/python \\
        results/ros_bench/replay_start_cpu2_amd_epyc/starts.py [--pauses]
"""
import statistics
import subprocess
import sys
import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from aaron_ros.msg import InferenceResult
from aaron_ros.ros.bag_player import BagPlayer

BAG = "data/sample_bag"
rclpy.init()
heard: list[tuple[float, float]] = []  # (arrival, latency_ms)
listener = rclpy.create_node("replay_start_listener")
listener.create_subscription(InferenceResult, "/aaron/detector/result",
                             lambda m: heard.append((time.time(), m.latency_ms)), 100)
executor = SingleThreadedExecutor()
executor.add_node(listener)
threading.Thread(target=executor.spin, daemon=True).start()


def player(name: str) -> BagPlayer:
    return BagPlayer(name, parameter_overrides=[Parameter("bag", value=BAG), Parameter("qos", value="sensor_data")])


def timed(label: str, play) -> tuple[str, float, float]:
    began = time.time()
    play()
    return label, began, time.time() + 1.0  # its last results


passes = []
first = player("player_a")
first.wait_for_subscribers(1, 20.0)
time.sleep(2.0)
if "--pauses" in sys.argv[1:]:
    first.start_offset_s = 7.0  # the bag's last 3 s
    for pause in (4.0, 0.3, 1.0, 0.3, 2.0, 4.0):
        time.sleep(pause)
        passes.append(timed(f"after a {pause} s pause", first.run))
else:
    passes.append(timed("A first play", first.run))
    time.sleep(4.0)
    passes.append(timed("B same player, 4 s idle", first.run))
    time.sleep(4.0)
    second = player("player_c")
    second.wait_for_subscribers(1, 20.0)
    time.sleep(1.0)
    passes.append(timed("C new player node", second.run))
    time.sleep(4.0)
    passes.append(timed("D new player process", lambda: subprocess.run(
        [sys.executable, "-m", "aaron_ros.cli", "play", BAG, "--wait-subscribers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)))
time.sleep(1.5)
for label, began, ended in passes:
    ms = [round(lat) for t, lat in sorted(heard) if began <= t <= ended]
    print(f"{label}: first 8 {ms[:8]}, median {statistics.median(ms):.0f}, {len(ms)} results")
executor.shutdown()
rclpy.shutdown()
