"""What bounds throughput: a cost model from the kernel bags' profiles alone.

A frame of a task costs at least its stages' core time on their most efficient thread count
(threads x time alone, summed over the stages; on CPUs, one thread). C cores give C x 1000
core-ms a second, so no policy serves more than

    cores bound = offered x min(1, C x 1000 / sum(rate x core_ms))

with every task shed in proportion. One frame at a time (sequential) runs each frame in its
fastest time alone (solo_ms, on however many threads), so it serves at most

    one-lane bound = offered x min(1, 1000 / sum(rate x solo_ms))

Their ratio is the most any policy can gain over one model at a time. Both leave out the host
work around the stages (Python, hand-offs between threads: `host_ms`, measured alone, beside
them), and stages side by side slow each other (caches, memory bandwidth, the interpreter lock),
so measured throughput stays below both.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from aaron_ros.bench.workload import Workload
from aaron_ros.coordinator.versions import VersionChooser


def stage_costs(chooser: VersionChooser, model: str, cores: int) -> dict:
    """A frame's least stage core time (ms x threads) and fastest stage time alone (ms); NaN
    for a model whose versions were never profiled (no kernel bag)."""
    core = min(k * chooser.remaining_ms(model, 0, k) for k in range(1, cores + 1))
    solo = chooser.remaining_ms(model, 0)
    return {"core_ms": core if core > 0 else math.nan, "solo_ms": solo if solo > 0 else math.nan}


def throughput_bound(workload: Workload, isolation: Mapping[str, Mapping], cores: int) -> dict:
    """Offered frames/s and the two bounds (NaN where a task's figures are missing)."""
    offered = sum(t.rate_hz for t in workload.tasks)
    costs = [(t.rate_hz, isolation.get(t.name, {})) for t in workload.tasks]
    core = sum(r * i.get("core_ms", math.nan) for r, i in costs)
    solo = sum(r * i.get("solo_ms", math.nan) for r, i in costs)
    return {"offered_fps": offered,
            "cores_bound_fps": offered * min(1.0, cores * 1e3 / core),
            "one_lane_bound_fps": offered * min(1.0, 1e3 / solo),
            "core_ms_per_s": core}
