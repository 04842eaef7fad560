"""Profiling stage versions under background contention.

Each version is timed under every contention condition (isolation and each kind at each level),
on the lanes it would run on; its sensitivity to a kind is its slowdown under that kind's heavy
level, and its pressure on a kind is how much it slows a probe of that kind running beside it.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from aaron_ros.common.stats import summarize
from aaron_ros.kernels.background import Background, make_probe
from aaron_ros.kernels.background.levels import ISOLATION, LOADED_LEVELS
from aaron_ros.kernels.version import LevelProfile, ResourceShape, Version
from aaron_ros.models import Stage
from aaron_ros.runtime.executor import submit_stage
from aaron_ros.runtime.lanes import Lane, LaneSpec


def conditions_for(kinds: tuple[str, ...]) -> list[str]:
    return [ISOLATION] + [f"{k}/{lvl}" for k in kinds for lvl in LOADED_LEVELS]


def split_condition(condition: str) -> tuple[str, str]:
    """'memory/heavy' -> ('memory', 'heavy'); 'isolation' -> ('compute', 'isolation')."""
    if condition == ISOLATION:
        return "compute", ISOLATION
    kind, level = condition.split("/")
    return kind, level


class LaneSet:
    """Lanes for profiling, made on demand per (priority, SM budget) and closed together."""

    def __init__(self, device: torch.device, count: int):
        self.device, self.count = device, count
        self._lanes: dict[tuple, list[Lane]] = {}

    def for_shape(self, shape: ResourceShape) -> list[Lane]:
        key = (shape.priority, shape.sms)
        if key not in self._lanes:
            kind = "cuda" if self.device.type == "cuda" else "cpu"
            self._lanes[key] = [Lane(LaneSpec(name=f"prof{len(self._lanes)}-{i}", kind=kind, threads=1,
                                              priority=shape.priority, sms=shape.sms,
                                              device=self.device.index or 0))
                                for i in range(self.count)]
        return self._lanes[key]

    def close(self) -> None:
        for lanes in self._lanes.values():
            for lane in lanes:
                lane.close()


def stage_timer(runner: Stage, shape: ResourceShape, x: torch.Tensor, lanes: LaneSet) -> Callable[[], float]:
    """One call runs the version once, the way the runtime would, and returns its wall seconds."""
    pool = lanes.for_shape(shape)
    branch_lanes = pool[:shape.threads] if shape.branches == "parallel" else None

    def once() -> float:
        run = submit_stage(runner, x, pool[0], branch_lanes).result()
        return run.finished - run.started

    return once


def measure(once: Callable[[], float], reps: int, warmup: int) -> LevelProfile:
    for _ in range(warmup):
        once()
    s = summarize([once() for _ in range(reps)])
    return LevelProfile(p50_ms=round(s.p50_ms, 4), p95_ms=round(s.p95_ms, 4), n=s.n)


@dataclass
class Probe:
    """A small fixed workload of one kind, timed alone once and then beside each version."""

    kind: str
    lane: Lane
    alone_s: float
    run: Callable[[], None]

    @classmethod
    def make(cls, kind: str, device: torch.device, reps: int) -> Probe:
        lane = Lane(LaneSpec(name=f"probe-{kind}", kind="cpu", threads=1))
        run = make_probe(kind, str(device))
        probe = cls(kind, lane, 0.0, run)
        probe.alone_s = probe.median(reps)
        return probe

    def median(self, reps: int) -> float:
        self.lane.run(self.run)  # warm-up
        return summarize([self.lane.run(self.run).seconds for _ in range(reps)]).p50_ms / 1e3


def measure_pressure(once: Callable[[], float], probe: Probe, reps: int) -> float:
    """Slowdown of `probe` while the version runs in a loop beside it (1.0 = no pressure)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            once()

    looper = threading.Thread(target=loop, daemon=True)
    looper.start()
    try:
        beside = probe.median(reps)
    finally:
        stop.set()
        looper.join()
    return round(beside / probe.alone_s, 4)


def profile_condition(condition: str, work: list[tuple[Version, Callable[[], float]]], device: torch.device,
                      reps: int, warmup: int, on_done: Callable[[], None] = lambda: None) -> dict:
    """Time every version under one condition, inside one background generator run.

    Returns what the generator measured of itself (the share of the device it took)."""
    kind, level = split_condition(condition)
    with Background(kind, level, device=str(device)) as bg:
        for version, once in work:
            version.profiles[condition] = measure(once, reps, warmup)
            on_done()
    return bg.stats.as_dict()


def finish_sensitivity(version: Version, kinds: tuple[str, ...]) -> None:
    base = version.profiles[ISOLATION].p50_ms
    version.sensitivity = {k: round(version.profiles[f"{k}/heavy"].p50_ms / base, 4) for k in kinds}
