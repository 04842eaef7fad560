"""Do 0.92 MB best-effort images reach another process whole, and how soon? One process publishes
N rgb8 640x480 frames at 30 Hz, stamped as sent (`pub N`); another counts them for S seconds and
times stamp to callback (`sub N S`). Under each transports setting, from the repository's root:

    export ROS_DOMAIN_ID=97 P=.venv/bin/python D=results/ros_bench/shm_profile_ab_cpu2_amd_epyc/deliver.py
    $P $D sub 300 16 & sleep 2; $P $D pub 300; wait
"""
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

TOPIC, H, W, HZ = "deliver_images", 480, 640, 30


def sub(n: int, seconds: float) -> None:
    node = rclpy.create_node("deliver_sub")
    ms: list[float] = []

    def heard(m: Image) -> None:
        ms.append((time.time() - (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)) * 1e3)

    node.create_subscription(Image, TOPIC, heard, qos_profile_sensor_data)
    end = time.time() + seconds
    while time.time() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    p50, p99 = np.percentile(ms, [50, 99]) if ms else (float("nan"),) * 2
    print(f"received {len(ms)} of {n}; stamp to callback p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def pub(n: int) -> None:
    node = rclpy.create_node("deliver_pub")
    out = node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    while out.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(1.0)  # discovery of the reader's endpoints finished
    data = np.random.default_rng(0).integers(0, 255, H * W * 3, dtype=np.uint8).tobytes()
    for i in range(n):
        m = Image(height=H, width=W, encoding="rgb8", step=W * 3, data=data)
        m.header.frame_id = str(i)
        t = time.time()
        m.header.stamp.sec, m.header.stamp.nanosec = int(t), int(t % 1 * 1e9)
        out.publish(m)
        time.sleep(1 / HZ)


if __name__ == "__main__":
    rclpy.init()
    sub(int(sys.argv[2]), float(sys.argv[3])) if sys.argv[1] == "sub" else pub(int(sys.argv[2]))
