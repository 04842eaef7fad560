"""The grants of a replay's first 200 ms against 200 ms of its steady state. With a container
started with its grant trace on, on the same ROS domain:

    aaron-ros run config/f1tenth.yaml --no-table --ros-args -p publish_grants:=true

one player node plays the bag's last 3 s into it three times, after pauses of 1, 1 and 0.3 s.
Printed per pass: each stage granted in its first 200 ms and in the 200 ms from 1.5 s on, as
granted at (ms from the pass's first grant), ran for (ms), lane, task, frame, stage and version.
From the repository's root:

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA .venv/bin/python results/ros_bench/replay_start_cpu2_amd_epyc/first_grants.py
"""
import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from aaron_ros.msg import StageGrant
from aaron_ros.ros.bag_player import BagPlayer
from aaron_ros.ros.coordinator_node import GRANTS_TOPIC, TRACE_QOS

rclpy.init()
grants: list[StageGrant] = []
listener = rclpy.create_node("first_grants_listener")
listener.create_subscription(StageGrant, "/" + GRANTS_TOPIC, grants.append, TRACE_QOS)
executor = SingleThreadedExecutor()
executor.add_node(listener)
threading.Thread(target=executor.spin, daemon=True).start()
player = BagPlayer("first_grants_player", parameter_overrides=[Parameter("bag", value="data/sample_bag"),
                                                               Parameter("qos", value="sensor_data"),
                                                               Parameter("start_offset_s", value=7.0)])
player.wait_for_subscribers(1, 20.0)
time.sleep(2.0)
passes = []
for pause in (1.0, 1.0, 0.3):
    time.sleep(pause)
    first = len(grants)
    player.run()
    time.sleep(0.5)
    passes.append((pause, first, len(grants)))


def ns(t) -> int:
    return t.sec * 10**9 + t.nanosec


for pause, first, last in passes:
    these = sorted(grants[first:last], key=lambda g: ns(g.granted))
    t0 = ns(these[0].granted)
    for label, since_ms in (("its first 200 ms", 0), ("200 ms from 1.5 s on", 1500)):
        print(f"== after a {pause} s pause, {label}")
        for g in these:
            at_ms = (ns(g.granted) - t0) / 1e6
            if since_ms <= at_ms < since_ms + 200:
                print(f"{at_ms:7.1f} {(ns(g.finished) - ns(g.granted)) / 1e6:6.1f} {g.lane:5} {g.task:12} "
                      f"frame {g.frame:<5} stage {g.stage} {g.version}")
executor.shutdown()
rclpy.shutdown()
