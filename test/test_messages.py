"""Each aaron_ros message travels between two real rclpy nodes over DDS and arrives intact."""
from __future__ import annotations

import time

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from aaron_ros.msg import CoordinatorStatus, InferenceResult, StageGrant, TaskStatus


def _task_status(name: str) -> TaskStatus:
    return TaskStatus(task=name, model="resnet18", criticality="critical", deadline_ms=50.0,
                      p50_ms=21.5, p95_ms=30.25, p99_ms=44.0, miss_rate=0.125, fps=29.5,
                      completed=1000, dropped=3, failed=1)


def _inference_result() -> InferenceResult:
    m = InferenceResult(task="det", model="tiny_yolo", kernel_version="s3:inductor-1t", frame=42,
                        latency_ms=12.5, queueing_ms=1.5, deadline_ms=33.0, deadline_met=True,
                        kind=InferenceResult.KIND_DETECTIONS, class_ids=[3, 7],
                        scores=[0.75, 0.5], boxes=[1.0, 2.0, 30.0, 40.0, 5.0, 6.0, 7.0, 8.0])
    m.header.frame_id = "camera"
    m.header.stamp.sec, m.header.stamp.nanosec = 17, 250
    return m


def _stage_grant() -> StageGrant:
    m = StageGrant(task="seg", frame=7, stage=3, stage_name="03_block", version="eager", lane="cpu1")
    m.granted.sec, m.finished.sec, m.finished.nanosec = 5, 5, 999
    return m


def _coordinator_status() -> CoordinatorStatus:
    return CoordinatorStatus(policy="aaron", versions="adaptive", lanes=["cpu0", "cpu1"],
                             tasks=[_task_status("det"), _task_status("seg")])


@pytest.mark.parametrize("make", [_inference_result, _stage_grant, _task_status, _coordinator_status],
                         ids=["InferenceResult", "StageGrant", "TaskStatus", "CoordinatorStatus"])
def test_message_round_trip_over_dds(ros_context, make):
    sent = make() if make is not _task_status else make("det")
    msg_type = type(sent)
    pub_node = Node("aaron_test_pub", context=ros_context)
    sub_node = Node("aaron_test_sub", context=ros_context)
    received = []
    sub_node.create_subscription(msg_type, "/aaron/test", received.append, 10)
    pub = pub_node.create_publisher(msg_type, "/aaron/test", 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    try:
        deadline = time.monotonic() + 10.0
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert pub.get_subscription_count() == 1, "subscriber never matched"
        pub.publish(sent)
        while not received and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()
    assert received, f"no {msg_type.__name__} arrived"
    assert received[0] == sent
