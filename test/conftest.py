"""Shared fixtures: a private ROS context per test, so parallel runs never cross-talk."""
from __future__ import annotations

import itertools
import os

import pytest

# Domain ids 1..100, offset by process id so two suites on one machine stay apart.
_domains = itertools.cycle(range(1, 101))
_offset = os.getpid() % 100


@pytest.fixture
def ros_domain() -> int:
    return (next(_domains) + _offset) % 100 + 1


@pytest.fixture
def ros_context(ros_domain):
    rclpy = pytest.importorskip("rclpy")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    yield ctx
    ctx.try_shutdown()
