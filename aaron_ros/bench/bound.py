"""What bounds throughput: a cost model from each task measured alone.

A frame of a task costs at least its stages' core time on their most efficient shape (threads x
time alone, summed over the stages; on CPUs that is one thread) plus the host work around them
(measured alone, from its first grant to done, minus the stages' time). C cores give C x 1000 core-ms a second, so

    cores bound = offered x min(1, C x 1000 / sum(rate x (core_ms + host_ms)))

with every task shed in proportion. One frame at a time (sequential) takes each frame's service
time alone (first grant to done), however many threads it runs on:

    one-lane bound = offered x min(1, 1000 / sum(rate x service_ms))

Stages side by side slow each other (caches, memory bandwidth, the interpreter lock), so a
policy reaches the cores bound only when the load leaves room for that.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from aaron_ros.bench.workload import Workload
from aaron_ros.coordinator.versions import VersionChooser


def core_ms(chooser: VersionChooser, model: str, cores: int) -> float:
    """A frame's stage time in core-ms on the most efficient thread count (alone); NaN for a
    model whose versions were never profiled (no kernel bag)."""
    ms = min(k * chooser.remaining_ms(model, 0, k) for k in range(1, cores + 1))
    return ms if ms > 0 else math.nan


def throughput_bound(workload: Workload, isolation: Mapping[str, Mapping], cores: int) -> dict:
    """Offered frames/s and the two bounds (NaN where a task's alone figures are missing)."""
    offered = sum(t.rate_hz for t in workload.tasks)
    costs = [(t.rate_hz, isolation.get(t.name, {})) for t in workload.tasks]
    spent = sum(r * (i.get("core_ms", math.nan) + i.get("host_ms", math.nan)) for r, i in costs)
    one_lane = sum(r * i.get("service_ms", math.nan) for r, i in costs)
    return {"offered_fps": offered,
            "cores_bound_fps": offered * min(1.0, cores * 1e3 / spent),
            "one_lane_bound_fps": offered * min(1.0, 1e3 / one_lane),
            "core_ms_per_s": spent}
