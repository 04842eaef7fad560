"""`priority`: deadline-monotonic priorities at stage granularity, solo versions (RT-mDL's
scheduler): whenever a lane frees, the ready stage of the task with the shortest deadline runs."""
from __future__ import annotations

from aaron_ros.coordinator.policies.base import Pick, SchedulerView, deadline_monotonic_key, greedy


class Priority:
    name = "priority"
    sheds_late = False

    def lanes(self, pool: int, tasks: int) -> int:
        return pool

    def pick(self, view: SchedulerView) -> list[Pick]:
        return greedy(view, sorted(view.requests, key=deadline_monotonic_key))
