"""Per-task service statistics while a system runs: the metrics of a recent window (what a status
topic reports), and totals and latency percentiles since the start (a run's summary), from the
records of how each frame ended."""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from aaron_ros.common.stats import LatencyHistogram
from aaron_ros.coordinator.metrics import NAN, task_metrics
from aaron_ros.coordinator.types import JobRecord, Outcome, TaskSpec


@dataclass
class _Task:
    spec: TaskSpec
    window: deque = field(default_factory=deque)  # (ended at, record), oldest first
    totals: dict = field(default_factory=lambda: {"done": 0, "late": 0, "dropped": 0, "failed": 0})
    latencies: LatencyHistogram = field(default_factory=LatencyHistogram)  # of every frame done
    done_at: tuple[float, float] | None = None  # (first, last) frame done


class Monitor:
    """Thread-safe: records arrive from whichever thread ended a frame, snapshots are read elsewhere."""

    def __init__(self, tasks: list[TaskSpec], window_s: float = 5.0):
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._tasks = {t.name: _Task(t) for t in tasks}
        self._lock = threading.Lock()
        self._since: float | None = None  # the first frame's end
        self._last: float | None = None  # the latest frame's end

    def add(self, rec: JobRecord, now: float) -> None:
        with self._lock:
            t = self._tasks[rec.task]
            t.window.append((now, rec))
            self._since = now if self._since is None else self._since
            self._last = now
            if rec.outcome is Outcome.DONE:
                t.totals["done"] += 1
                t.done_at = (now, now) if t.done_at is None else (t.done_at[0], now)
                if rec.latency_s is not None:
                    t.totals["late"] += rec.latency_s * 1e3 > t.spec.deadline_ms
                    t.latencies.add(rec.latency_s)
            else:
                t.totals[rec.outcome] += 1
            self._trim(t, now)

    def _trim(self, t: _Task, now: float) -> None:
        while t.window and t.window[0][0] < now - self.window_s:
            t.window.popleft()

    def update_task(self, spec: TaskSpec) -> None:
        """Frames that end from now on are judged by `spec`'s deadline."""
        with self._lock:
            self._tasks[spec.name].spec = spec

    def snapshot(self, now: float) -> dict[str, dict]:
        """Per task: the window's p50/p95/p99 ms, miss rate and fps; the totals since the start
        (done, late, dropped, failed); and, under "run", the p50/p99 ms and miss rate since the
        start, the fps from the task's first frame done to its last (a pause or the drain after
        the last frame does not lower it), and the seconds from the first frame's end to the last."""
        out = {}
        with self._lock:
            span = min(self.window_s, now - self._since) if self._since is not None else self.window_s
            run_s = self._last - self._since if self._since is not None else NAN
            for name, t in self._tasks.items():
                self._trim(t, now)
                m = task_metrics((r for _, r in t.window), t.spec, max(span, 1e-3))
                tot = t.totals
                ended = tot["done"] + tot["dropped"] + tot["failed"]
                p50, p99 = t.latencies.percentiles_ms(50, 99)
                run = {"p50_ms": p50, "p99_ms": p99,
                       "miss_rate": (tot["late"] + tot["dropped"] + tot["failed"]) / ended if ended else NAN,
                       "fps": _rate(tot["done"], t.done_at), "seconds": run_s}
                out[name] = {**m, "totals": dict(tot), "run": run}
        return out


def _rate(done: int, done_at: tuple[float, float] | None) -> float:
    """Frames per second between the first frame done and the last: done - 1 periods."""
    if done_at is None:
        return 0.0
    first, last = done_at
    return (done - 1) / (last - first) if last > first else NAN
