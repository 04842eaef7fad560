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
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return LatencySummary(len(ms), float(p50), float(p95), float(p99), float(ms.mean()))


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

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile (0-100) in ms, the middle of its bin; NaN when empty."""
        if self.n == 0:
            return float("nan")
        i = int(np.searchsorted(np.cumsum(self.counts), q / 100 * self.n))
        return self.LOW_S * self.RATIO ** (min(i, self.BINS - 1) + 0.5) * 1e3
