"""Count the Python function calls (and the C functions they call) of an f1tenth container
(`aaron-ros run`, policy aaron, in this process), by thread group, from the file SIGNALS/go on
(touch it as the bag starts playing), and write them to OUT as JSON rows [group, function, count].
The profiling hook slows every call: the counts are the measure, not the time.

    count_calls.py SECONDS OUT SIGNALS
"""
from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time

from aaron_ros.ros import run as run_module

GROUPS = ("lane", "results", "clock", "MainThread")


def main(seconds: float, out: str, signals: str) -> None:
    counts: collections.Counter = collections.Counter()

    def group() -> str:
        name = threading.current_thread().name
        return next((g for g in GROUPS if name.startswith(g)), name.split("-")[0].split("_")[0])

    def hook(frame, event, arg) -> None:
        if event == "call":
            code = frame.f_code
            counts[(group(), f"{code.co_filename.split('site-packages/')[-1].split('aaron_ros/')[-1]}:"
                             f"{code.co_name}")] += 1
        elif event == "c_call":
            counts[(group(), "C:" + getattr(arg, "__qualname__", str(arg)))] += 1

    def start_counting() -> None:  # what loading the models called is not counted
        while not os.path.exists(os.path.join(signals, "go")):
            time.sleep(0.05)
        counts.clear()

    threading.Thread(target=start_counting, daemon=True).start()
    threading.setprofile(hook)
    sys.setprofile(hook)
    run_module.run("config/f1tenth.yaml", duration_s=seconds, table=False)
    sys.setprofile(None)
    with open(out, "w") as f:
        json.dump([[g, name, n] for (g, name), n in counts.items()], f)


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2], sys.argv[3])
