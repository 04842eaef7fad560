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
from typing import Any

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
    pre_s: float = 0.0  # wall time of the HostWork that made the input, included above
    post_s: float = 0.0  # wall time of the HostWork that finished the output, included above


class HostWork:
    """Host-side frame work run on a stage's lane, inside that stage's grant: an input made when
    the first stage runs (pre-processing, called with no argument), or the output finished right
    after the last stage (post-processing, called with the stage's output). So it is granted,
    timed work; a frame dropped while waiting never pays for it. Its own wall and CPU time are
    kept so a report can tell it from the model's."""

    def __init__(self, fn: Callable[..., Any]):
        self._fn = fn
        self.seconds = self.cpu_s = 0.0

    def __call__(self, *args: Any) -> Any:
        c0, t0 = time.thread_time(), time.perf_counter()
        try:
            return self._fn(*args)
        finally:
            self.seconds, self.cpu_s = time.perf_counter() - t0, time.thread_time() - c0


def submit_stage(stage: Stage, x: torch.Tensor | HostWork, lane: Lane,
                 branch_lanes: Sequence[Lane] | None = None, then: HostWork | None = None) -> Future[StageRun]:
    """Start `stage` on `lane`; with `branch_lanes`, spread a branch group's branches over them.
    `x` may be a HostWork making the input; `then`, a HostWork finishing the output."""
    split = bool(branch_lanes and stage.is_branch_group)
    pre = x if isinstance(x, HostWork) else None

    def ran(out: torch.Tensor, seconds: float, lanes: tuple[str, ...], started: float, finished: float,
            cpu_s: float) -> StageRun:
        return StageRun(stage.index, out, seconds, lanes, started, finished, cpu_s,
                        pre.seconds if pre else 0.0, then.seconds if then else 0.0)

    if not split:
        device = lane.device

        def work(x_in: torch.Tensor | HostWork) -> Any:
            out = stage((x_in() if pre else x_in).to(device, non_blocking=True))
            return then(out) if then else out
        # The input travels as an argument, so a CUDA lane can guard a tensor made on another stream.
        return _then(lane.submit(work, x), lambda run: ran(run.output, run.seconds, (run.lane,), run.started,
                                                           run.finished, run.cpu_s))
    if pre is not None:
        x = pre()  # branches on several lanes need it first (a first stage is rarely a branch group)
    x = x.to(lane.device, non_blocking=True)
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
            c0 = time.thread_time()
            out = then(out) if then else out
            done.set_result(ran(out, max(r.seconds for r in runs), tuple(sorted({r.lane for r in runs})),
                                min(r.started for r in runs), time.perf_counter(),
                                sum(r.cpu_s for r in runs) + time.thread_time() - c0))
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
