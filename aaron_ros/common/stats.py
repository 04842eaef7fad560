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
