"""`elastic` (Miriam): critical stages run at full size; normal stages are shrunk to fill what
the critical work leaves free (here: the threads left of the cores)."""
from __future__ import annotations

from aaron_ros.coordinator.policies.base import Pick, SchedulerView, deadline_monotonic_key, greedy


class Elastic:
    name = "elastic"
    sheds_late = False

    def lanes(self, pool: int, tasks: int) -> int:
        return pool

    def pick(self, view: SchedulerView) -> list[Pick]:
        ordered = sorted(view.requests, key=lambda r: (not r.job.critical, deadline_monotonic_key(r)))

        def size(req, chosen):
            if req.job.critical:
                return None  # full size: any version
            # What is left after everything running and granted this round; at least one thread.
            return max(1, view.cores - view.busy_threads(chosen))

        return greedy(view, ordered, size)
