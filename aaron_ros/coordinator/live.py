"""The coordinator driven for real: frames arrive on a wall clock, granted stages run on lanes,
finished stages come back through one event queue to the single coordinating thread."""
from __future__ import annotations

import itertools
import queue
import time
from typing import Callable, Sequence

import torch

from aaron_ros.coordinator.coordinator import Coordinator
from aaron_ros.coordinator.types import Grant, JobRecord
from aaron_ros.kernels.bag import KernelBag
from aaron_ros.runtime.executor import submit_stage
from aaron_ros.runtime.lanes import LanePool

DRAIN_TIMEOUT_S = 30.0


def run_live(coord: Coordinator, pool: LanePool, bags: dict[str, KernelBag],
             arrivals: Sequence[tuple[float, str]], duration_s: float,
             make_input: Callable[[str], torch.Tensor]) -> list[JobRecord]:
    """Replay `arrivals` (seconds from start, task) in real time for `duration_s`, then serve
    what was released (at most DRAIN_TIMEOUT_S more); anything left after that is dropped."""
    events: queue.Queue = queue.Queue()
    frames = {name: itertools.count() for name in coord.tasks}
    pending = [a for a in arrivals if a[0] < duration_s]
    nxt = 0
    start = time.perf_counter()

    def now() -> float:
        return time.perf_counter() - start

    def launch(grant: Grant) -> None:
        job = grant.request.job
        runner = bags[job.task.model].runner(grant.version)
        branch = [pool[l] for l in (grant.lane, *grant.branch_lanes)] if grant.branch_lanes else None
        try:
            fut = submit_stage(runner, job.data, pool[grant.lane], branch)
        except Exception as exc:
            events.put((grant, None, f"{type(exc).__name__}: {exc}"))
            return
        fut.add_done_callback(lambda f, g=grant: events.put((g, f, None)))

    def handle(grant: Grant, fut, error: str | None) -> None:
        if error is None:
            try:
                run = fut.result()
            except Exception as exc:  # the model raised: this job fails, the others go on
                error = f"{type(exc).__name__}: {exc}"
        t = now()
        if error is None:
            coord.release(grant, t, run.finished - run.started, run.output)
        else:
            coord.release(grant, t, 0.0, error=error)

    # Arrivals stop at `duration_s`; frames already released are still served (bounded), so the
    # end of a run does not count as misses.
    end = duration_s + DRAIN_TIMEOUT_S
    while (t := now()) < end:
        while nxt < len(pending) and pending[nxt][0] <= t:
            task = pending[nxt][1]
            coord.submit(task, next(frames[task]), pending[nxt][0], make_input(task))
            nxt += 1
        grants = coord.schedule(now())
        for grant in grants:
            launch(grant)
        if t >= duration_s and not coord.running:
            break  # nothing runs and the policy starts nothing more: the run is over
        until = pending[nxt][0] if nxt < len(pending) else (duration_s if t < duration_s else end)
        try:
            handle(*events.get(timeout=max(0.0, until - now())))
        except queue.Empty:
            continue
        while True:  # everything else already finished, before the next decision
            try:
                handle(*events.get_nowait())
            except queue.Empty:
                break
    coord.drain(now())
    return coord.records
