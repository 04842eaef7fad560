"""`sequential`: one lane, FIFO, each model's solo-best version: one model at a time."""
from __future__ import annotations

from aaron_ros.coordinator.policies.base import Pick, SchedulerView, greedy


class Sequential:
    name = "sequential"
    sheds_late = False

    def lanes(self, pool: int, tasks: int) -> int:
        return 1

    def pick(self, view: SchedulerView) -> list[Pick]:
        # A started job runs to its end before the next one starts (FIFO by arrival).
        ordered = sorted(view.requests, key=lambda r: (r.job.started is None, r.job.release))
        return greedy(view, ordered[:1])
