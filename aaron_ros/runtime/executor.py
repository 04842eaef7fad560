"""The stage executor: runs one stage of a stage graph on a lane and reports its measured time.

A branch group may run as one piece on one lane, or with its branches spread over several lanes
(the IOS choice); the branch outputs are then joined on the host side once all are ready.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import torch

from aaron_ros.models.stage_graph import Stage, StageGraph
from aaron_ros.runtime.lanes import Lane, LaneRun


@dataclass(frozen=True)
class StageRun:
    """One stage executed: its output and where and how long it ran."""

    stage: int
    output: torch.Tensor
    seconds: float  # measured compute time (for split branches: the slowest branch)
    lanes: tuple[str, ...]
    started: float
    finished: float
    cpu_s: float = 0.0  # lane threads' CPU time (summed over split branches)


class Deferred:
    """An input made only when its first stage runs, on that stage's lane and inside its grant:
    pre-processing becomes granted, timed work, and a frame dropped while waiting is never
    prepared. Its own wall and CPU time are kept so a report can tell it from the model's."""

    def __init__(self, make: Callable[[], torch.Tensor]):
        self._make = make
        self.seconds = self.cpu_s = 0.0

    def __call__(self) -> torch.Tensor:
        c0, t0 = time.thread_time(), time.perf_counter()
        try:
            return self._make()
        finally:
            self.seconds, self.cpu_s = time.perf_counter() - t0, time.thread_time() - c0


def submit_stage(stage: Stage, x: torch.Tensor | Deferred, lane: Lane,
                 branch_lanes: Sequence[Lane] | None = None) -> Future[StageRun]:
    """Start `stage` on `lane`; with `branch_lanes`, spread a branch group's branches over them."""
    split = bool(branch_lanes and stage.is_branch_group)
    if isinstance(x, Deferred) and not split:
        device = lane.device
        return _then(lane.submit(lambda: stage(x().to(device, non_blocking=True))), lambda run: StageRun(
            stage.index, run.output, run.seconds, (run.lane,), run.started, run.finished, run.cpu_s))
    if isinstance(x, Deferred):
        x = x()  # branches on several lanes need it first (a first stage is rarely a branch group)
    x = x.to(lane.device, non_blocking=True)
    if not split:
        return _then(lane.submit(stage, x), lambda run: StageRun(
            stage.index, run.output, run.seconds, (run.lane,), run.started, run.finished, run.cpu_s))

    lanes = list(branch_lanes)
    parts = [lanes[i % len(lanes)].submit(branch, x) for i, branch in enumerate(stage.branches)]
    done: Future = Future()
    remaining = [len(parts)]
    lock = threading.Lock()

    def on_part(_: Future) -> None:
        with lock:  # callbacks run on several lane threads; the last to finish joins
            remaining[0] -= 1
            if remaining[0]:
                return
        try:
            runs: list[LaneRun] = [p.result() for p in parts]
            # Branch outputs may live on different streams' devices: gather on the stage's lane.
            out = Stage.join([r.output.to(lane.device) for r in runs])
            done.set_result(StageRun(stage.index, out, max(r.seconds for r in runs),
                                     tuple(sorted({r.lane for r in runs})),
                                     min(r.started for r in runs), time.perf_counter(),
                                     sum(r.cpu_s for r in runs)))
        except BaseException as exc:  # a failed branch fails the stage
            done.set_exception(exc)

    for p in parts:
        p.add_done_callback(on_part)
    return done


def run_stage(stage: Stage, x: torch.Tensor, lane: Lane,
              branch_lanes: Sequence[Lane] | None = None) -> StageRun:
    return submit_stage(stage, x, lane, branch_lanes).result()


def run_graph(graph: StageGraph, x: torch.Tensor, lane: Lane) -> list[StageRun]:
    """Run a whole model stage by stage on one lane (each stage a separate submission)."""
    runs = []
    for stage in graph.stages:
        run = run_stage(stage, x, lane)
        runs.append(run)
        x = run.output
    return runs


def _then(fut: Future[LaneRun], fn) -> Future[StageRun]:
    out: Future = Future()

    def done(f: Future) -> None:
        try:
            out.set_result(fn(f.result()))
        except BaseException as exc:
            out.set_exception(exc)

    fut.add_done_callback(done)
    return out
