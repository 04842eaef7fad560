"""Shared fixtures: a private ROS context per test, so parallel runs never cross-talk."""
from __future__ import annotations

import itertools
import os
from importlib.util import find_spec

import pytest

from aaron_ros.ros.domain import domains_in_use

# These import ROS messages at the top. Where there is no ROS at all (a GPU machine's own Python
# running `pytest -k cuda`), they are left out instead of failing the collection.
if find_spec("rclpy") is None:
    collect_ignore = ["test_image_conversions.py", "test_messages.py", "test_package.py", "test_sources.py"]

# Images cross processes in some tests: Fast DDS's default transports lose most of them (see
# the README); every participant of the suite uses the same transports so they all match.
os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")

# Domain ids 1..50: below the bench's own (51-101), and all in ROS 2's safe 0-101
# (aaron_ros/ros/domain.py). Each suite starts at its own place in the cycle (its process id).
_offset = os.getpid() % 50
_domains = itertools.cycle([(d + _offset) % 50 + 1 for d in range(50)])


@pytest.fixture
def ros_domain() -> int:
    """The next domain no process on this machine is on: two suites at once (or a test's process
    still closing) stay apart."""
    for _ in range(50):
        domain = next(_domains)
        if not domains_in_use([domain]):
            return domain
    return domain  # every one taken: share rather than fail


@pytest.fixture
def ros_context(ros_domain):
    rclpy = pytest.importorskip("rclpy")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    yield ctx
    ctx.try_shutdown()


@pytest.fixture
def ros_context_args(ros_domain):
    """Factory: a private context initialised with ROS arguments, e.g.
    `ctx = ros_context_args("--params-file", path)`; every one made is shut down after the test."""
    rclpy = pytest.importorskip("rclpy")
    made = []

    def make(*ros_args: str):
        ctx = rclpy.Context()
        rclpy.init(args=["--ros-args", *ros_args], context=ctx, domain_id=ros_domain)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.try_shutdown()
