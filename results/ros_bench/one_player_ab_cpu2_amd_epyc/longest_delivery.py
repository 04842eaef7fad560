"""Per policy and replay of a ROS bench run, the longest "publish + delivery" of any result (the
container's publish to the subscriber's middleware) and when in the replay it came, from the
run's e2e.json. Replays are told apart by a gap of over 1 s in the camera stamps.

    python results/ros_bench/one_player_ab_cpu2_amd_epyc/longest_delivery.py OUT/e2e.json
"""
from __future__ import annotations

import json
import sys

GAP_NS = 1_000_000_000


def main(path: str) -> None:
    for policy, tasks in json.load(open(path)).items():
        frames = sorted((f[4], f[5]["publish + delivery"][0], task) for task, v in tasks.items() for f in v["frames"])
        replays: list[list[tuple[int, float, str]]] = [[]]
        for frame in frames:
            if replays[-1] and frame[0] - replays[-1][-1][0] > GAP_NS:
                replays.append([])
            replays[-1].append(frame)
        longest = [max(r, key=lambda f: f[1]) + (r[0][0],) for r in replays]
        print(f"{policy}: {len(replays)} replays; longest delivery in each, ms (s into the replay, task):")
        print(", ".join(f"{ms:.1f} ({(stamp - start) / 1e9:.2f}, {task})" for stamp, ms, task, start in longest))
        print(f"  over 10 ms: {sum(ms > 10 for _, ms, _, _ in longest)} replays; over 50 ms: "
              f"{sum(ms > 50 for _, ms, _, _ in longest)}; the longest {max(ms for _, ms, _, _ in longest):.1f} ms\n")


if __name__ == "__main__":
    main(sys.argv[1])
