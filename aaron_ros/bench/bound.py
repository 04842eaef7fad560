"""What bounds throughput: a cost model from the kernel bags' profiles alone.

A frame of a task costs at least its stages' core time on their most efficient thread count
(threads x time alone, summed over the stages; on CPUs, one thread). C cores give C x 1000
core-ms a second, and no policy serves more frames a second than by spending them on the
cheapest frames first, each task up to its rate:

    cores bound = most_served(C x 1000, each task's rate and core_ms)

One frame at a time (sequential) runs each frame in its fastest time alone (solo_ms, on however
many threads), so it serves at most

    one-lane bound = most_served(1000, each task's rate and solo_ms)

Their ratio is the most any policy can gain over one model at a time. Both leave out the host
work around the stages (Python, hand-offs between threads: `host_ms`, measured alone, beside
them), and stages side by side slow each other (caches, memory bandwidth, the interpreter lock),
so measured throughput stays below both. (Shedding every task in proportion, the bound before,
was passed by policies that shed the costly frames more.)
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


def most_served(budget_ms: float, tasks: list[tuple[float, float]]) -> float:
    """Frames a second that `budget_ms` of work a second serves at most: the cheapest first, each
    of `tasks` (rate Hz, ms per frame) up to its rate; NaN where a cost is unknown."""
    served = 0.0
    for rate, cost in sorted(tasks, key=lambda t: t[1]):
        if not cost > 0:
            return math.nan
        n = min(rate, max(0.0, budget_ms) / cost)
        served, budget_ms = served + n, budget_ms - n * cost
    return served


def throughput_bound(workload: Workload, isolation: Mapping[str, Mapping], cores: int) -> dict:
    """Offered frames/s and the two bounds (NaN where a task's figures are missing)."""
    costs = [(t.rate_hz, isolation.get(t.name, {})) for t in workload.tasks]
    return {"offered_fps": sum(t.rate_hz for t in workload.tasks),
            "cores_bound_fps": most_served(cores * 1e3, [(r, i.get("core_ms", math.nan)) for r, i in costs]),
            "one_lane_bound_fps": most_served(1e3, [(r, i.get("solo_ms", math.nan)) for r, i in costs]),
            "core_ms_per_s": sum(r * i.get("core_ms", math.nan) for r, i in costs)}
