"""Latency statistics shared by every benchmark and status report."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencySummary:
    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(seconds: Sequence[float]) -> LatencySummary:
    """Percentiles of latencies given in seconds, reported in milliseconds (NaN when empty)."""
    if len(seconds) == 0:
        nan = float("nan")
        return LatencySummary(0, nan, nan, nan, nan)
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p95, p99 = percentiles(ms, (50, 95, 99))
    return LatencySummary(len(ms), p50, p95, p99, float(ms.mean()))


def percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    """np.percentile(values, qs), its default (linear) method to the last bit, at a fifth of its
    cost (a live status computes a few each time); NaN where there are none or one is NaN."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if len(ordered) == 0 or np.isnan(ordered[-1]):  # a sort puts NaN last
        return [float("nan")] * len(qs)
    return [_linear(ordered, q) for q in qs]


def _linear(ordered: np.ndarray, q: float) -> float:
    at = q / 100 * (len(ordered) - 1)
    i = int(at)
    a, b, t = float(ordered[i]), float(ordered[min(i + 1, len(ordered) - 1)]), at - i
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


class LatencyHistogram:
    """Latencies of a whole run in bounded memory: log-spaced bins 1% wide from 10 µs to about
    1000 s, so a percentile is within 0.5% whether the run lasted a minute or a week."""

    LOW_S, RATIO, BINS = 1e-5, 1.01, 1852  # 1.01 ** 1852 ≈ 1e8

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS, np.int64)
        self.n = 0

    def add(self, seconds: float) -> None:
        i = int(np.log(max(seconds, self.LOW_S) / self.LOW_S) / np.log(self.RATIO))
        self.counts[min(i, self.BINS - 1)] += 1
        self.n += 1

    def percentiles_ms(self, *qs: float) -> list[float]:
        """The q-th percentile (0-100) in ms of each of `qs`, the middle of its bin; NaN when empty."""
        if self.n == 0:
            return [float("nan")] * len(qs)
        at = np.searchsorted(np.cumsum(self.counts), [q / 100 * self.n for q in qs])
        return [self.LOW_S * self.RATIO ** (min(int(i), self.BINS - 1) + 0.5) * 1e3 for i in at]
