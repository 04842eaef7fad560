"""Which frames the components' rate limits refuse, and why: the container of config/f1tenth.yaml
run in this process, the sample bag played once by `aaron-ros play` in a process of its own, as
a camera driver would be. Every RateLimiter.admit is wrapped to keep its stamp, the gap since the
frame before and the credit it found (a probe, not a fault: what it decides is unchanged). From
the repository's root:

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA PYTHONPATH=. \\
        .venv/bin/python results/ros_bench/rate_limit_start_cpu2_amd_epyc/probe.py
"""
import collections
import os
import signal
import subprocess
import sys
import threading
import time

from aaron_ros.ros import perception
from aaron_ros.ros.run import run

seen: dict[int, list[tuple[float, float, float | None, float, bool]]] = collections.defaultdict(list)
admit = perception.RateLimiter.admit


def probed_admit(self, now):
    credit, last = self._credit, self._last
    ok = admit(self, now)
    seen[id(self)].append((self.rate_hz, now, last, credit, ok))
    return ok


def play_then_stop() -> None:
    time.sleep(12.0)  # the models load
    subprocess.run([sys.executable, "-m", "aaron_ros.cli", "play", "data/sample_bag", "--wait-subscribers", "3"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    time.sleep(2.0)
    os.kill(os.getpid(), signal.SIGINT)


perception.RateLimiter.admit = probed_admit
threading.Thread(target=play_then_stop, daemon=True).start()
try:
    run("config/f1tenth.yaml", table=False)
except SystemExit:
    pass

for calls in seen.values():
    refused = [i for i, c in enumerate(calls) if not c[4]]
    print(f"\nlimit {calls[0][0]:g} Hz: {len(calls)} frames, {len(refused)} refused")
    if calls[0][0] >= 30:  # at or above the camera's rate: every refusal is a surprise
        for i in refused:
            _, now, last, credit, _ = calls[i]
            print(f"  frame {i}: {1e3 * (now - last):.2f} ms after the one before, credit {credit:.2f}")
    gaps = [1e3 * (c[1] - c[2]) for c in calls if c[2] is not None]
    print(f"  stamp gaps: first {gaps[0]:.2f} ms, then {min(gaps[1:]):.2f}-{max(gaps[1:]):.2f} ms")
