"""What handing one stage to a lane and hearing it end costs, apart from the stage: process CPU per
round trip with a stage that does nothing, 5 ms apart, with the caches as left and evicted (32 MB
read through) before each. Beside it, the bare hand-off: a queue put to a waiting thread that sets
an Event the caller waits on (the same two wake-ups, no lane code). From the repository's root:

    PYTHONPATH=. .venv/bin/python results/ros_bench/cold_start_cpu2_amd_epyc/round_trip.py
"""
from __future__ import annotations

import queue
import statistics
import threading
import time

import numpy as np
import torch

from aaron_ros.runtime.executor import submit_stage
from aaron_ros.runtime.lanes import Lane, LaneSpec

N = 300
JUNK = np.ones(4_000_000)  # 32 MB, above the last-level cache


class Nothing:
    """A stage that returns its input."""

    index = 0
    is_branch_group = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


def round_trips(start, evict: bool) -> float:
    """Median process CPU (µs) of `start(on_end)` until on_end has been called."""
    ended = threading.Event()
    spent = []
    for _ in range(N):
        if evict:
            JUNK.sum()
        ended.clear()
        c0 = time.process_time()
        start(ended.set)
        ended.wait()
        spent.append(time.process_time() - c0)
        time.sleep(0.005)
    return statistics.median(spent) * 1e6


def main() -> None:
    lane, stage, x = Lane(LaneSpec("cpu0")), Nothing(), torch.zeros(1, 8)
    work: queue.SimpleQueue = queue.SimpleQueue()

    def serve() -> None:
        while True:
            work.get()()

    threading.Thread(target=serve, daemon=True).start()
    ways = {"bare hand-off (queue put, Event set)": lambda done: work.put(done),
            "Lane.submit, a future's callback": lambda done: lane.submit(stage, x).add_done_callback(
                lambda f: done()),
            "submit_stage (what the live driver calls)": lambda done: submit_stage(
                stage, x, lane).add_done_callback(lambda f: done())}
    print("| round trip | caches as left µs | caches evicted µs |")
    print("|---|---|---|")
    for name, start in ways.items():
        print(f"| {name} | {round_trips(start, False):.0f} | {round_trips(start, True):.0f} |")


if __name__ == "__main__":
    main()
