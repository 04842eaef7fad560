"""`aaron`: contention-aware coordination.

- EDF with criticality: critical stages first, then the earliest absolute deadline.
- Per-stage version choice by predicted latency under the stages running beside it (with the
  `adaptive` setting), never more threads than the cores left free.
- Co-scheduling that avoids two stages pressing the same contention channel: among normal
  stages, one whose version presses a channel nobody running presses goes first.
- No work on a frame that cannot meet its deadline: a frame whose fastest remaining time alone
  already ends past it is dropped before it starts, or before its next stage (`sheds_late`).
- Never delaying a critical stage for a normal one: critical stages are granted first at full
  size; a normal stage starts only on cores nothing else holds (so it never squeezes a running
  critical stage), and is held back when an idle critical task's next frame is due before that
  stage would finish.
"""
from __future__ import annotations

from aaron_ros.coordinator.policies.base import Pick, SchedulerView
from aaron_ros.coordinator.types import StageRequest
from aaron_ros.coordinator.versions import lanes_of
from aaron_ros.kernels.version import Version


def channel(v: Version) -> str | None:
    """The contention channel a version presses most (None when it was never measured)."""
    if not v.pressure:
        return None
    return max(v.pressure, key=v.pressure.get)


class Aaron:
    name = "aaron"
    sheds_late = True

    def lanes(self, pool: int, tasks: int) -> int:
        return pool

    def pick(self, view: SchedulerView) -> list[Pick]:
        free = list(view.free_lanes)
        chosen: list[Version] = []
        picks: list[Pick] = []
        critical = sorted((r for r in view.requests if r.job.critical), key=lambda r: r.job.deadline)
        normal = [r for r in view.requests if not r.job.critical]
        for req in critical:
            if not free:
                return picks
            v = view.choose(req, view.co_runners(chosen), max_lanes=len(free))
            picks.append(self._take(req, v, free))
            chosen.append(v)
        while normal and free:
            budget = view.cores - view.busy_threads(chosen)
            if budget < 1:
                # Every core is taken (a full-size critical stage, or normals): one more thread
                # would slow what runs, and a critical stage pays for it first.
                break
            options = [(r, view.choose(r, view.co_runners(chosen), budget, max_lanes=1)) for r in normal]
            pressed = {channel(v) for v in view.co_runners(chosen)} - {None}
            req, v = min(options, key=lambda o: (channel(o[1]) in pressed, o[0].job.deadline))
            normal.remove(req)
            if self._critical_due(view, req, v, chosen):
                continue  # the cores are about to be wanted by a critical frame
            picks.append(self._take(req, v, free))
            chosen.append(v)
        return picks

    @staticmethod
    def _take(req: StageRequest, v: Version, free: list[str]) -> Pick:
        lanes = free[:lanes_of(v)]
        del free[:lanes_of(v)]
        return Pick(req, lanes[0], v, tuple(lanes[1:]))

    @staticmethod
    def _critical_due(view: SchedulerView, req: StageRequest, v: Version, chosen: list[Version]) -> bool:
        """Would an idle critical task's next frame arrive before this normal stage ends?"""
        finish = view.now + view.chooser.predict_ms(v, view.co_runners(chosen)) / 1e3
        busy = {r.job.task.name for r in view.requests} | {g.request.job.task.name for g in view.running}
        for name, spec in view.tasks.items():
            if not spec.critical or name in busy:
                continue
            # A time overdue by more than a tenth of a period is past (the frame comes on a longer
            # gap, or the camera stopped): holding for it would stall the normal tasks.
            late = 0.1 * spec.period_s
            due = next((t for t in view.next_releases.get(name, ()) if view.now - late < t), None)
            if due is not None and due < finish:
                view.hold_until(due + late)  # the frame arrives first, or the hold ends
                return True
        return False
