"""`naive`: every task on its own lane with its solo-best version, no coordination: what N
separate nodes do (each grabs the device whenever it has a frame)."""
from __future__ import annotations

from aaron_ros.coordinator.policies.base import Pick, SchedulerView


class Naive:
    name = "naive"
    sheds_late = False

    def lanes(self, pool: int, tasks: int) -> int:
        return tasks

    def pick(self, view: SchedulerView) -> list[Pick]:
        own = {name: view.lanes[i] for i, name in enumerate(view.tasks)}
        picks = []
        for req in view.requests:
            lane = own[req.job.task.name]
            if lane in view.free_lanes:
                # Each node picks for itself: blind to what the others run.
                picks.append(Pick(req, lane, view.choose(req, [], max_lanes=1)))
        return picks
