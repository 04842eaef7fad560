"""What one publish costs the publishing thread, as the container's results threads publish: an
InferenceResult with a 14-part timing list, to a subscriber in another process, over Fast DDS with
LARGE_DATA; the message, its bytes already serialised (Fast DDS's write alone), and the
serialisation alone. A 4 ms pause before each call, as between results.

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA python publish_cost.py sub 40 &
    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA python publish_cost.py pub
"""
import statistics
import sys
import time

import rclpy
from rclpy.serialization import serialize_message

from aaron_ros.msg import FrameTime, InferenceResult

CALLS = 400


def cpu_us(fn) -> str:
    times = []
    for _ in range(CALLS):
        time.sleep(0.004)
        cpu = time.thread_time()
        fn()
        times.append((time.thread_time() - cpu) * 1e6)
    return f"median {statistics.median(times):6.1f} µs, mean {statistics.fmean(times):6.1f} µs"


def main(role: str, seconds: float = 40.0) -> None:
    rclpy.init()
    node = rclpy.create_node(f"publish_cost_{role}")
    if role == "sub":
        node.create_subscription(InferenceResult, "result", lambda _: None, 10)
        end = time.time() + seconds
        while time.time() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        return
    pub = node.create_publisher(InferenceResult, "result", 10)
    while pub.get_subscription_count() == 0:
        time.sleep(0.1)
    msg = InferenceResult(task="segmentation", model="seg_net", kind=InferenceResult.KIND_MASK)
    msg.timing = [FrameTime(part=f"part {i}", wall_ms=1.0, cpu_ms=0.5) for i in range(14)]
    raw = serialize_message(msg)
    for _ in range(2):
        for name, fn in [("the message", lambda: pub.publish(msg)), ("its bytes", lambda: pub.publish(raw)),
                         ("serialised only", lambda: serialize_message(msg))]:
            print(f"{name:16s} {cpu_us(fn)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], *map(float, sys.argv[2:]))
