"""Each model alone: latency at batch 1 on one lane, stage by stage, after warm-up."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from tqdm import tqdm

from aaron_ros.common.stats import LatencySummary, summarize
from aaron_ros.models import StageGraph, build_model
from aaron_ros.runtime.executor import run_graph
from aaron_ros.runtime.lanes import Lane, LaneSpec


def time_alone(graph: StageGraph, lane: Lane, frames: int, warmup: int = 1) -> LatencySummary:
    """Latency of one model alone on one lane (fresh input each frame, the first `warmup` untimed)."""
    times = []
    for i in range(warmup + frames):
        x = graph.example_input().to(lane.device)
        t0 = time.perf_counter()
        run_graph(graph, x, lane)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return summarize(times)


@dataclass(frozen=True)
class AloneResult:
    model: str
    threads: int
    latency: LatencySummary


def bench_models(names: list[str], thread_counts: list[int] | None = None, frames: int = 10,
                 warmup: int = 2, progress: bool = True) -> list[AloneResult]:
    """Every model at every thread budget, one CPU lane at a time (nothing else running)."""
    thread_counts = thread_counts or sorted({1, os.cpu_count() or 1})
    results = []
    with tqdm(total=len(names) * len(thread_counts), desc="models alone", unit="run",
              disable=not progress) as bar:
        for name in names:
            graph = build_model(name)
            for threads in thread_counts:
                lane = Lane(LaneSpec(name=f"cpu-{threads}t", kind="cpu", threads=threads))
                try:
                    results.append(AloneResult(name, threads, time_alone(graph, lane, frames, warmup)))
                finally:
                    lane.close()
                bar.update()
    return results
