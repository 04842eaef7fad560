"""A deterministic simulated clock for the coordinator: stage times come from a function (e.g. a
profile table), so scheduling rules can be proven without running models."""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence

from aaron_ros.coordinator.coordinator import Coordinator
from aaron_ros.coordinator.types import Grant, JobRecord
from aaron_ros.kernels.version import Version

StageTime = Callable[[Grant, list[Version]], float]  # (grant, co-runners) -> seconds, or raise


def simulate(coord: Coordinator, arrivals: Sequence[tuple[float, str]], duration_s: float,
             stage_time: StageTime, on_grant: Callable[[Grant, float], None] | None = None) -> list[JobRecord]:
    """Replay `arrivals` (time, task) for `duration_s` simulated seconds, then drain."""
    events: list = []  # (time, order, kind, payload)
    order = itertools.count()
    frames = {name: itertools.count() for name in coord.tasks}
    for t, task in arrivals:
        if t < duration_s:
            heapq.heappush(events, (t, next(order), "arrive", task))
    now = 0.0
    while events:
        now, _, kind, payload = heapq.heappop(events)
        if now >= duration_s:
            break
        if kind == "arrive":
            coord.submit(payload, next(frames[payload]), now)
        elif kind == "done":
            grant, seconds, error = payload
            coord.release(grant, now, seconds, error=error)
        for grant in coord.schedule(now):
            if on_grant:
                on_grant(grant, now)
            co = [g.version for g in coord.running_grants() if g is not grant]
            try:
                seconds, error = stage_time(grant, co), None
            except Exception as exc:  # a model that fails: the job fails, the rest go on
                seconds, error = 0.0, f"{type(exc).__name__}: {exc}"
            heapq.heappush(events, (now + seconds, next(order), "done", (grant, seconds, error)))
        if coord.recheck_at is not None and coord.recheck_at > now:  # frames held back: decide again then
            heapq.heappush(events, (coord.recheck_at, next(order), "recheck", None))
    coord.drain(min(now, duration_s))
    return coord.records
