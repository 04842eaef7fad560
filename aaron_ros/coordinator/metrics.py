"""What one policy run achieved, per task and in all, from the records of how each frame ended.

A frame counts as missed when it finished after its deadline or never finished (dropped or
failed): the miss rate is over every frame released, so a policy cannot look good by dropping.
Latency percentiles are over the frames that finished.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from aaron_ros.common.stats import percentiles, summarize
from aaron_ros.coordinator.types import JobRecord, Outcome, TaskSpec

NAN = float("nan")


def task_metrics(records: Iterable[JobRecord], task: TaskSpec, duration_s: float) -> dict:
    """Latency percentiles, miss rate, rate and frame counts of one task.

    `records` may hold other tasks' records too: only those named `task.name` count.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    latencies: list[float] = []  # of the frames done (one pass: a live status runs this often)
    done = dropped = failed = 0
    for r in records:
        if r.task != task.name:
            continue
        if r.outcome is Outcome.DONE:
            done += 1
            if r.latency_s is not None:
                latencies.append(r.latency_s)
        elif r.outcome is Outcome.DROPPED:
            dropped += 1
        else:
            failed += 1
    deadline_s = task.deadline_ms / 1e3
    late = sum(s > deadline_s for s in latencies)
    released = done + dropped + failed
    s = summarize(latencies)
    return {
        "p50_ms": s.p50_ms, "p95_ms": s.p95_ms, "p99_ms": s.p99_ms, "mean_ms": s.mean_ms,
        "miss_rate": (late + dropped + failed) / released if released else NAN,
        "fps": done / duration_s,
        "goodput_fps": (done - late) / duration_s,  # finished within the deadline
        "released": released, "done": done, "late": late,
        "dropped": dropped, "failed": failed,
        "deadline_ms": task.deadline_ms, "criticality": task.criticality,
    }


def worst(values: Iterable[float]) -> float:
    """The largest value; NaN when any is NaN (unknown is never better) or there are none."""
    vals = list(values)
    if not vals or any(math.isnan(v) for v in vals):
        return NAN
    return max(vals)


def policy_metrics(records_by_task: Mapping[str, Sequence[JobRecord]], tasks: Sequence[TaskSpec],
                   duration_s: float, grant_us: Sequence[float]) -> dict:
    """Every task's metrics plus the run's totals.

    grant_us: the coordinator's decision overhead per grant, in microseconds.
    stage_ms_mean: the mean time a stage ran on its lane (NaN where stages were not timed), and
    grant_share: the mean decision over it (what scheduling stage by stage costs).
    to_lane_us / from_lane_us: the mean hand-offs of a stage, wall time: granted to started on its
    lane, and ended on its lane to seen by the coordinator (waits for the locks included);
    queue_us: of to_lane_us, granted to put on the lane's queue (the decision, its bookkeeping and
    the launch; NaN where not timed), the rest being the lane taking it up;
    grant_wall_share: the decision and both hand-offs over the mean stage (what a grant costs a
    lane in all).
    critical_p99_ms: the worst p99 over critical tasks (NaN when a critical task finished nothing);
    critical_miss_rate: missed over released frames of all critical tasks together.
    """
    per_task = {t.name: task_metrics(records_by_task.get(t.name, ()), t, duration_s) for t in tasks}
    critical = [per_task[t.name] for t in tasks if t.critical]
    released = sum(m["released"] for m in critical)
    missed = sum(m["late"] + m["dropped"] + m["failed"] for m in critical)
    g50, g99 = percentiles(grant_us, [50, 99])
    times = [s for rs in records_by_task.values() for r in rs for s in r.stage_times]
    stage_ms = float(np.mean([s.finished - s.started for s in times])) * 1e3 if times else NAN
    to_lane_us = float(np.mean([s.started - s.granted for s in times])) * 1e6 if times else NAN
    from_lane_us = float(np.mean([s.seen - s.finished for s in times])) * 1e6 if times else NAN
    queued = [s.queued - s.granted for s in times if s.queued is not None]
    queue_us = float(np.mean(queued)) * 1e6 if queued else NAN
    decision_us = float(np.mean(grant_us)) if len(grant_us) else NAN
    return {
        "tasks": per_task,
        "throughput_fps": sum(m["done"] for m in per_task.values()) / duration_s,
        "goodput_fps": sum(m["done"] - m["late"] for m in per_task.values()) / duration_s,
        "grant_us_p50": g50,
        "grant_us_p99": g99,
        "grants": len(grant_us),
        "stage_ms_mean": stage_ms,
        "grant_share": decision_us / 1e3 / stage_ms,
        "to_lane_us": to_lane_us,
        "from_lane_us": from_lane_us,
        "queue_us": queue_us,
        "grant_wall_share": (decision_us + to_lane_us + from_lane_us) / 1e3 / stage_ms,
        "critical_p99_ms": worst(m["p99_ms"] for m in critical),
        "critical_miss_rate": missed / released if released else NAN,
        "duration_s": duration_s,
    }
