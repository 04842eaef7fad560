"""Run `aaron-ros ARGS` with every cyclic garbage collection of this process timed, and print the
count, the total and the longest pauses (with their thread and wall-clock time) to standard error.
From the repository's root:

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA PYTHONPATH=. .venv/bin/python \\
      results/ros_bench/bench_gc_cpu2_amd_epyc/gc_pauses.py bench --bag data/sample_bag --config f1tenth \\
      --policies naive,priority,aaron --repeats 2 --isolation 0 --out OUT --no-progress
"""
from __future__ import annotations

import gc
import sys
import threading
import time

from aaron_ros import cli

SHOWN = 15
pauses: list[tuple[float, int, float, str]] = []  # wall clock at the end, generation, ms, thread
started: dict[int, float] = {}


def timed(phase: str, info: dict) -> None:
    if phase == "start":
        started[threading.get_ident()] = time.perf_counter()
    elif (t0 := started.pop(threading.get_ident(), None)) is not None:
        pauses.append((time.time(), info["generation"], (time.perf_counter() - t0) * 1e3,
                       threading.current_thread().name))


if __name__ == "__main__":
    gc.callbacks.append(timed)
    try:
        sys.exit(cli.main(sys.argv[1:]))
    finally:
        full = [p for p in pauses if p[1] == 2]
        print(f"GC: {len(pauses)} collections, {sum(p[2] for p in pauses):.0f} ms; generation 2: {len(full)}, "
              f"{sum(p[2] for p in full):.0f} ms, longest {max((p[2] for p in pauses), default=0):.1f} ms",
              file=sys.stderr)
        for when, generation, ms, thread in sorted(pauses, key=lambda p: -p[2])[:SHOWN]:
            print(f"GC pause {ms:7.1f} ms generation {generation} thread {thread} at {when:.3f}", file=sys.stderr)
