"""`aaron`: contention-aware coordination.

- EDF with criticality: critical stages first, then the earliest absolute deadline.
- Per-stage version choice by predicted latency under the stages running beside it (with the
  `adaptive` setting).
- Critical work sized by its slack when normal work needs the cores: when a normal frame would
  be lost while the critical frame runs at full size (pushed out of its queue by the frames due
  meanwhile, or past its deadline; the frame's end taken at the tail of its stages' times, their
  95th percentile alone, as frames are lost there), a critical stage runs on the fewest threads
  whose predicted time to the end of the frame, times a margin learned from its misses
  (`coordinator.slack`), ends by the deadline. Otherwise it runs at full size: its latency stays
  what it is alone. Live, stages run past their profiled tail (`slack.Tail`): a normal frame lost
  only in that live tail counts too, where the smaller critical stage has room for the same tail.
- Normal stages fill what is left: one alone grows into every free core; several split them,
  unless running them one at a time on all the cores is predicted to get through them sooner
  (side by side they slow each other, and a second thread may speed a stage up almost 2x); they
  resize at each stage boundary.
- Co-scheduling that avoids two stages pressing the same contention channel: among normal
  stages, one whose version presses a channel nobody running presses goes first, then the
  earliest deadline; but one that another would lose a frame waiting for (late, or pushed out of
  its queue) goes after it.
- No work on a frame that cannot meet its deadline: a frame whose fastest remaining time alone
  already ends past it is dropped before it starts, or before its next stage (`sheds_late`).
- Never delaying a critical stage beyond what its deadline allows: critical stages are granted
  first; a normal stage starts only on cores nothing else holds (so it never squeezes a running
  critical stage), and is held back when an idle critical task's next frame, due before that
  stage ends, could not wait for it and still finish in time (stages do not preempt: this is the
  blocking bound of response-time analysis).
"""
from __future__ import annotations

import math

from aaron_ros.coordinator.policies.base import Pick, SchedulerView
from aaron_ros.coordinator.types import Overload, StageRequest
from aaron_ros.coordinator.versions import isolated_ms, lanes_of
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
        co = view.co_runners()  # what runs, and then what this decision starts beside it
        picks: list[Pick] = []
        critical = sorted((r for r in view.requests if r.job.critical), key=lambda r: r.job.deadline)
        normal = [r for r in view.requests if not r.job.critical]
        for req in critical:
            if not free:
                return picks
            v = self._size_critical(view, req, co, len(free), normal)
            picks.append(self._take(req, v, free))
            co = co + [v]
        while normal and free:
            idle = view.cores - sum(v.shape.threads for v in co)
            if idle < 1:
                # Every core is taken (a full-size critical stage, or normals): one more thread
                # would slow what runs, and a critical stage pays for it first.
                break
            budget = self._normal_budget(view, normal, co, idle, min(len(normal), len(free)))
            options = [(r, view.choose(r, co, budget, max_lanes=1)) for r in normal]
            req, v = options[0] if len(options) == 1 else self._preferred(view, options, co)
            normal.remove(req)
            if self._blocks_critical(view, v, co):
                continue
            picks.append(self._take(req, v, free))
            co = co + [v]
        return picks

    @staticmethod
    def _preferred(view: SchedulerView, options: list[tuple[StageRequest, Version]],
                   co: list[Version]) -> tuple[StageRequest, Version]:
        """Of several normal stages, the first in order (one whose version presses a channel
        nobody in `co` presses, then the earliest deadline) that no other would lose a frame
        waiting for; the earliest deadline when every one would cost a frame."""
        pressed = {channel(v) for v in co} - {None}
        ranked = sorted(options, key=lambda o: (channel(o[1]) in pressed, o[0].job.deadline))
        for req, v in ranked:  # frames are lost in the tail: its time stretched as live tails are
            until = view.now + view.chooser.predict_ms(v, co) * view.tails.get(v.shape.threads, 1.0) / 1e3
            if not any(Aaron._loses(view, other, until) for other, _ in options if other is not req):
                return req, v
        return min(options, key=lambda o: o[0].job.deadline)

    @staticmethod
    def _normal_budget(view: SchedulerView, normal: list[StageRequest], co: list[Version], idle: int,
                       share: int) -> int:
        """Threads for the next normal stage beside `co`: the idle cores split among the `share`
        stages that can start, unless one at a time on all of them is predicted to get through
        them sooner (stages side by side slow each other; threads beyond one speed a stage up less)."""
        if share < 2 or idle < share:
            return max(1, idle // share)
        first, *others = sorted(normal, key=lambda r: r.job.deadline)[:share]
        whole = view.choose(first, co, idle, max_lanes=1)
        parts = [view.choose(r, co, idle // share, max_lanes=1) for r in (first, *others)]
        side_by_side = view.chooser.predict_ms(parts[0], co + parts[1:])
        return idle if share * view.chooser.predict_ms(whole, co) < side_by_side else idle // share

    @staticmethod
    def _size_critical(view: SchedulerView, req: StageRequest, co: list[Version], lanes: int,
                       normal: list[StageRequest]) -> Version:
        """The fastest version, or the smallest one the slack allows when normal work needs it."""
        full = view.choose(req, co, max_lanes=lanes)
        if full.shape.threads == 1:
            return full
        job = req.job

        def to_end_ms(v: Version, tail: bool = False) -> float:
            now_ms = view.chooser.predict_ms(v, co)
            if tail:  # the prediction is a median: scaled as the version's own tail is alone
                now_ms *= isolated_ms(v, tail=True) / isolated_ms(v)
            return now_ms + view.chooser.remaining_ms(job.task.model, req.stage + 1, v.shape.threads, tail)

        # A frame is lost in the tail of the stages' times, not at their median; an unknown time
        # (never profiled) sizes nothing down.
        tail_ms = to_end_ms(full, tail=True)
        if not math.isfinite(tail_ms):
            return full
        in_live_tail_only = not Aaron._normal_loses(view, normal, view.now + tail_ms / 1e3)
        if in_live_tail_only:
            # Live, that tail is longer than profiled (slack.Tail). A normal frame lost only there
            # is worth a smaller critical stage only if the critical frame has room for the same.
            live = view.tails.get(full.shape.threads, 1.0)
            if not Aaron._normal_loses(view, normal, view.now + live * tail_ms / 1e3):
                return full
        margin = view.margins.get(job.task.name, 1.0)
        for threads in range(1, full.shape.threads):
            v = view.choose(req, co, threads, lanes)
            room = margin * view.tails.get(v.shape.threads, 1.0) if in_live_tail_only else margin
            if v.shape.threads <= threads and view.now + room * to_end_ms(v) / 1e3 <= job.deadline:
                return v
        return full

    @staticmethod
    def _normal_loses(view: SchedulerView, normal: list[StageRequest], until: float) -> bool:
        """Would a normal frame be lost if nothing normal ran until `until`: a ready one that
        would then miss its deadline, or one pushed out of its queue by the frames due before?"""
        return (any(Aaron._late(view, r, until) for r in normal)
                or any(Aaron._pushed_out(view, name, until) for name in view.tasks))

    @staticmethod
    def _loses(view: SchedulerView, req: StageRequest, until: float) -> bool:
        """Would `req`'s task lose a frame if it ran nothing until `until`?"""
        return Aaron._late(view, req, until) or Aaron._pushed_out(view, req.job.task.name, until)

    @staticmethod
    def _late(view: SchedulerView, req: StageRequest, until: float) -> bool:
        """Would `req`'s frame miss its deadline if it started only at `until`?"""
        return until + view.chooser.remaining_ms(req.job.task.model, req.stage) / 1e3 > req.job.deadline

    @staticmethod
    def _pushed_out(view: SchedulerView, task: str, until: float) -> bool:
        """Would the frames of normal `task` due before `until` push one out of its queue: one
        waiting now, or one of their own (a queue of one, empty now, loses the first of two)?"""
        spec, waiting = view.tasks[task], view.waiting.get(task, 0)
        if spec.critical:
            return False
        nxt = min(view.next_releases.get(task, ()), default=None)
        due = 0 if nxt is None or nxt > until else 1 + int((until - nxt) * spec.rate_hz)
        room = 1 if spec.overload is Overload.KEEP_LATEST else spec.queue_size
        return waiting + due > room

    @staticmethod
    def _take(req: StageRequest, v: Version, free: list[str]) -> Pick:
        lanes = free[:lanes_of(v)]
        del free[:lanes_of(v)]
        return Pick(req, lanes[0], v, tuple(lanes[1:]))

    @staticmethod
    def _blocks_critical(view: SchedulerView, v: Version, co: list[Version]) -> bool:
        """Would an idle critical task's next frame, arriving before this normal stage (beside
        `co`) ends, miss its deadline if it waited for it and then ran at full size?"""
        stage_ms = view.chooser.predict_ms(v, co)
        if not math.isfinite(stage_ms):
            return False  # never profiled (no kernel bag): an unknown time holds nothing back
        finish = view.now + stage_ms / 1e3
        busy = {r.job.task.name for r in view.requests} | {g.request.job.task.name for g in view.running}
        for name, spec in view.tasks.items():
            if not spec.critical or name in busy:
                continue
            # A time overdue by more than a tenth of a period is past (the frame comes on a longer
            # gap, or the camera stopped): holding for it would stall the normal tasks.
            late = 0.1 * spec.period_s
            due = next((t for t in view.next_releases.get(name, ()) if view.now - late < t), None)
            if due is None or finish <= due:
                continue
            frame_s = view.margins.get(name, 1.0) * view.chooser.remaining_ms(spec.model, 0) / 1e3
            if finish + frame_s > max(due, view.now) + spec.deadline_ms / 1e3:
                view.hold_until(due + late)  # the frame arrives first, or the hold ends
                return True
        return False
