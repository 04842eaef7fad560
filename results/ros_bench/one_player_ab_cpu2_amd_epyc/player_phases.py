"""Where a bench replay's time went with a new player process for each: `aaron-ros play` run as the
old bench ran it (no subscriber to wait for), each line of its output timed from its start.

    .venv/bin/python results/ros_bench/one_player_ab_cpu2_amd_epyc/player_phases.py [RUNS]

Prints, per run: seconds to its node's first log line (the interpreter, imports, rclpy and its DDS
participant), the play as the player timed it, the whole process less that play, and from its
`published ...` line to its exit (the participant's teardown).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

CMD = [sys.executable, "-m", "aaron_ros.cli", "play", "data/sample_bag", "--lead-in", "1",
       "--wait-subscribers", "0"]


def main(runs: int) -> None:
    env = {**os.environ, "ROS_DOMAIN_ID": "97", "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}
    print("| run | to the node's first line s | play s (its own) | whole less the play s | published -> exit s |")
    print("|---|---|---|---|---|")
    for run in range(1, runs + 1):
        t0 = time.monotonic()
        proc = subprocess.Popen(CMD, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        first = published = None
        played = float("nan")
        for line in proc.stdout:
            now = time.monotonic() - t0
            if first is None and "[bag_player]" in line:
                first = now
            if line.startswith("published "):
                published, played = now, float(line.split(" in ")[-1].split()[0])
        proc.wait()
        end = time.monotonic() - t0
        print(f"| {run} | {first:.2f} | {played:.2f} | {end - played:.2f} | {end - published:.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
