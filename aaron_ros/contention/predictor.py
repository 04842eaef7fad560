"""Latency of a stage version beside the stage versions running with it, from its bag profiles.

Every version was profiled alone and under background of each kind (compute, memory, model) at
three levels, and each level is a known number of busy background threads (compute and memory:
one worker at half duty = 0.5, one worker = 1, one per core; model: 1, 2 and 3 model threads).
So each kind gives the version a slowdown curve over busy background threads, 1.0 at 0. The
curves are made monotone (least squares), since small stages profile noisily and more
background never speeds a version up, and beyond the last level the version's share of the
cores is what shrinks: the slowdown grows with (its threads + background) / cores.

A prediction reads the curves at the co-runners' busy threads, linearly between levels. A
looping co-runner keeps about half of its intra-op threads' worth of cores busy (OCCUPANCY,
measured by `aaron_ros.bench.predictor_eval`): it spends much of each call in Python under the
interpreter lock the other stages share, and its extra threads idle between parallel regions.
The kinds are blended: the model kind (real stages beside the version, as co-runners are) gets a
fixed weight, and compute and memory split the rest by the co-runners' pressure on each (how
much they slow a probe of that kind beyond 1.0).

One effect no profiled background shows: a co-runner that holds the interpreter lock through its
whole call (AOTInductor's CPU runner does: probes beside it slow 2-57x, far beyond what sharing
cores explains) stalls the version each time it needs the lock back. That adds, per such
co-runner, its call length (its isolation latency) times the times a run of the version's
backend waits for the lock (LOCK_WAITS, measured on co-runs too).

`observe` corrects online: the log of measured / predicted is smoothed (EWMA) per load regime
over all versions (alone, sharing the cores, oversubscribed, stalled on the lock), and per
version and regime with `alpha`, starting from its regime's; a version uses its own once
observed in a regime, its regime's before. Errors are clipped, so that one outlier moves a
correction by a bounded step. Profiles are read once per version object, on its first use.
"""
from __future__ import annotations

import math
import os
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from aaron_ros.kernels.background.levels import CPU_LEVELS, ISOLATION, KINDS, LOADED_LEVELS, MODEL_LEVELS, PER_CORE
from aaron_ros.kernels.background.probes import PROBE_KINDS
from aaron_ros.kernels.version import Version

CHANNELS = PROBE_KINDS  # the kinds a version's pressure is measured on
# Share of a co-runner's intra-op threads that a looping stage keeps busy.
OCCUPANCY = 0.5
# Weight of the model-kind curve in the blend.
MODEL_WEIGHT = 0.5
# Backends whose calls hold the interpreter lock throughout.
LOCK_HOLDERS = frozenset({"inductor"})
# Lock-holder calls a run waits out: an eager stage takes the lock back around its ops, a single
# native call once when it returns, a lock holder never (it keeps the lock from the start).
# Parallel branches wait on each of their lanes.
LOCK_WAITS = {"eager": 3.0, "inductor": 0.0}
DEFAULT_LOCK_WAITS = 1.0
# The largest error one observation counts with: a single outlier moves a correction by at most
# a factor of 2 ** alpha.
MAX_ERROR = math.log(2.0)
# A regime's correction pools many versions, each measured noisily: it averages over 4x as many
# observations as a version's own (its EWMA rate is alpha * REGIME_RATE).
REGIME_RATE = 0.25
# Mixes of a version and co-runners whose uncorrected latency is kept (a bound on the memory).
MAX_MODELS = 100_000


@dataclass(frozen=True)
class Curve:
    """Slowdown over busy background threads: monotone, 1.0 at 0, linear between points."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    threads: int  # of the version: its share of the cores beyond the last point
    cores: int

    def __call__(self, x: float) -> float:
        xs, ys = self.xs, self.ys
        if x >= xs[-1]:
            return ys[-1] * self._load(x) / self._load(xs[-1])
        i = bisect_right(xs, x)
        x0, y0 = xs[i - 1], ys[i - 1]
        return y0 + (ys[i] - y0) * (x - x0) / (xs[i] - x0)

    def _load(self, x: float) -> float:
        return max(1.0, (self.threads + x) / self.cores)


@dataclass(frozen=True)
class Facts:
    """What predictions need of one version, read from its profiles once."""

    version: Version  # held, so that the id() it is cached under is never reused
    isolation_ms: float  # inf where it was never profiled
    threads: int
    curves: tuple[Curve | None, ...]  # per kind in KINDS; None where not profiled
    pressure: tuple[float, float]  # as a co-runner: beyond 1.0 on compute and memory
    hold_ms: float  # as a co-runner: how long each of its calls holds the interpreter lock
    lock_waits: float  # lock-holder calls it waits out per run


def level_threads(kind: str, cores: int) -> tuple[float, ...]:
    """Busy background threads of each profiling level of `kind` on a CPU with `cores` cores."""
    if kind == "model":
        return tuple(float(len(MODEL_LEVELS[lvl])) for lvl in LOADED_LEVELS)
    return tuple((cores if CPU_LEVELS[lvl].workers == PER_CORE else CPU_LEVELS[lvl].workers)
                 * CPU_LEVELS[lvl].duty for lvl in LOADED_LEVELS)


def monotone(ys: Sequence[float]) -> list[float]:
    """Least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[tuple[float, int]] = []  # (mean, count)
    for y in ys:
        blocks.append((y, 1))
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, n1), (m2, n2) = blocks.pop(-2), blocks.pop()
            blocks.append(((m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2))
    return [m for m, n in blocks for _ in range(n)]


def curve_of(v: Version, kind: str, cores: int) -> Curve | None:
    conds = [f"{kind}/{lvl}" for lvl in LOADED_LEVELS]
    if ISOLATION not in v.profiles or not all(c in v.profiles for c in conds):
        return None
    iso = v.profiles[ISOLATION].p50_ms
    # Clamped at 1.0: isolation anchors the curve; a level measured faster is noise in one of them.
    ys = monotone([max(1.0, v.profiles[c].p50_ms / iso) for c in conds])
    return Curve((0.0, *level_threads(kind, cores)), (1.0, *ys), v.shape.threads, cores)


def clip(error: float) -> float:
    return max(-MAX_ERROR, min(MAX_ERROR, error))


def facts_of(v: Version, cores: int) -> Facts:
    iso = v.profiles[ISOLATION].p50_ms if ISOLATION in v.profiles else math.inf
    holds = v.backend in LOCK_HOLDERS
    # A lock holder's pressure on a probe measures the lock, not a channel.
    pressure = (0.0, 0.0) if holds else tuple(max(0.0, v.pressure.get(k, 1.0) - 1.0) for k in CHANNELS)
    waits = LOCK_WAITS.get(v.backend, DEFAULT_LOCK_WAITS)
    if v.shape.branches == "parallel":
        waits *= v.shape.threads
    return Facts(v, iso, v.shape.threads, tuple(curve_of(v, k, cores) for k in KINDS), pressure,
                 iso if holds else 0.0, waits)


class ContentionPredictor:
    """Predicts a version's latency (ms) beside co-runners; `observe` corrects it online.

    A version never profiled in isolation predicts inf. Meant for one coordinator thread."""

    def __init__(self, cores: int | None = None, alpha: float = 0.2):
        self.cores = cores or os.cpu_count() or 1
        self.alpha = alpha
        # Keyed by id(version): Version is unhashable, and its id repeats across models.
        self._facts: dict[int, Facts] = {}
        # Log corrections: per load regime over all versions, and per (version, regime), which a
        # version uses once it has been observed in that regime.
        self._regime_log: dict[str, float] = {}
        self._version_log: dict[tuple[int, str], float] = {}
        # _model's answers, by the ids of the version and its co-runners: the profiles behind them
        # never change, and a coordinator asks about the same few mixes again and again.
        self._models: dict[tuple[int, tuple[int, ...]], tuple[float, tuple[int, str]]] = {}

    def predict(self, version: Version, co_runners: Sequence[Version]) -> float:
        return self._corrected(version, co_runners, tuple(map(id, co_runners)))

    def fastest(self, versions: Sequence[Version], co_runners: Sequence[Version]) -> Version:
        """The version predicted fastest beside `co_runners` (the first of equals)."""
        co = tuple(map(id, co_runners))  # once for all the versions: a decision asks this most
        best, best_ms = versions[0], math.inf
        for v in versions:
            ms = self._corrected(v, co_runners, co)
            if ms < best_ms:
                best, best_ms = v, ms
        return best

    def _corrected(self, version: Version, co_runners: Sequence[Version], co_ids: tuple[int, ...]) -> float:
        ms, key = self._model(version, co_runners, co_ids)
        log = self._version_log.get(key)
        return ms * math.exp(self._regime_log.get(key[1], 0.0) if log is None else log)

    def observe(self, version: Version, co_runners: Sequence[Version], measured_ms: float) -> None:
        ms, key = self._model(version, co_runners, tuple(map(id, co_runners)))
        if not (0 < ms < math.inf and 0 < measured_ms < math.inf):
            return
        error = math.log(measured_ms / ms)
        shared = self._regime_log.get(key[1], 0.0)
        self._regime_log[key[1]] = shared + self.alpha * REGIME_RATE * clip(error - shared)
        own = self._version_log.get(key, shared)  # a version starts from what its regime knew
        self._version_log[key] = own + self.alpha * clip(error - own)

    def _get(self, v: Version) -> Facts:
        f = self._facts.get(id(v))
        if f is None:
            f = self._facts[id(v)] = facts_of(v, self.cores)
        return f

    def _model(self, version: Version, co_runners: Sequence[Version],
               co_ids: tuple[int, ...]) -> tuple[float, tuple[int, str]]:
        """The uncorrected latency, and the (version, load regime) its corrections are kept under."""
        key = (id(version), co_ids)  # ids stay theirs: _facts holds every version asked about
        got = self._models.get(key)
        if got is None:
            if len(self._models) >= MAX_MODELS:
                self._models.clear()
            got = self._models[key] = self._compute(version, co_runners)
        return got

    def _compute(self, version: Version, co_runners: Sequence[Version]) -> tuple[float, tuple[int, str]]:
        f = self._get(version)
        if not co_runners:
            return f.isolation_ms, (id(version), "alone")
        busy = compute = memory = hold = 0.0
        for c in co_runners:
            cf = self._get(c)
            busy += cf.threads * OCCUPANCY
            compute += cf.pressure[0]
            memory += cf.pressure[1]
            hold += cf.hold_ms
        stall = f.lock_waits * hold
        regime = "lock" if stall else "oversubscribed" if f.threads + busy > self.cores else "shared"
        return f.isolation_ms * self._slowdown(f, busy, compute, memory) + stall, (id(version), regime)

    def _slowdown(self, f: Facts, busy: float, compute: float, memory: float) -> float:
        cc, mc, model = f.curves
        if cc and mc:
            # No pressure on either channel says nothing of the mix: weigh them evenly.
            wc = compute / (compute + memory) if compute + memory else 0.5
            s = wc * cc(busy) + (1.0 - wc) * mc(busy)
        elif cc or mc:
            s = (cc or mc)(busy)
        else:
            s = None
        if model:
            s = model(busy) if s is None else MODEL_WEIGHT * model(busy) + (1.0 - MODEL_WEIGHT) * s
        # Without contention profiles the version's share of the cores is all there is to go by.
        return max(1.0, (f.threads + busy) / self.cores) if s is None else s
