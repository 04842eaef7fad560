"""The grant trace of two plays of the bag (each after a 1-s lead-in), into a container started
with it on the same ROS domain:

    aaron-ros run config/f1tenth.yaml --no-table --ros-args -p publish_grants:=true

Printed: per task, stage and version, the grants' count, mean and 90th percentile (ms), and the
share of the time the detector ran on two-thread versions. Run once alone and once beside
`neighbour.py 10 30`. From the repository's root:

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA \\
        .venv/bin/python results/ros_bench/noisy_neighbour_cpu2_amd_epyc/grants.py
"""
import collections
import statistics
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
listener = rclpy.create_node("neighbour_grants_listener")
listener.create_subscription(StageGrant, "/" + GRANTS_TOPIC, grants.append, TRACE_QOS)
executor = SingleThreadedExecutor()
executor.add_node(listener)
threading.Thread(target=executor.spin, daemon=True).start()
player = BagPlayer("neighbour_grants_player", parameter_overrides=[
    Parameter("bag", value="data/sample_bag"), Parameter("qos", value="sensor_data"),
    Parameter("lead_in_s", value=1.0)])
player.wait_for_subscribers(1, 20.0)
time.sleep(2.0)
for _ in range(2):
    player.run()
    time.sleep(1.0)


def ns(t) -> int:
    return t.sec * 10**9 + t.nanosec


ms = collections.defaultdict(list)
for g in grants:
    ms[g.task, g.stage, g.version].append((ns(g.finished) - ns(g.granted)) / 1e6)
for (task, stage, version), xs in sorted(ms.items()):
    print(f"{task:12} stage {stage} {version:22} {len(xs):4} grants, mean {statistics.mean(xs):5.1f} ms, "
          f"p90 {sorted(xs)[int(0.9 * len(xs))]:5.1f}")
span_s = (max(ns(g.finished) for g in grants) - min(ns(g.granted) for g in grants)) / 1e9
wide_s = sum((ns(g.finished) - ns(g.granted)) / 1e9 for g in grants
             if g.task == "detector" and g.version.endswith("t2"))
print(f"over {span_s:.1f} s, the detector ran two-thread versions for {wide_s:.1f} s ({100 * wide_s / span_s:.0f}%)")
executor.shutdown()
rclpy.shutdown()
