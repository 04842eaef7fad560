"""Which kept ROS bench reports hold a delivery stall: a policy whose every task's mean "publish +
delivery" (the container's publish to the subscriber's middleware; about 1 ms otherwise) is over
3 ms, which one stall of a few hundred ms over every result topic at once makes of it.

    python results/ros_bench/delivery_stalls_cpu2_amd_epyc/scan.py [ROOT ...]   # default: results/ros_bench
"""
import json
import sys
from pathlib import Path

MEAN_MS = 3.0


def main(roots: list[str]) -> None:
    seen, hits = 0, []
    for root in roots:
        for path in sorted(Path(root).rglob("report.json")):
            policies = json.loads(path.read_text()).get("policies", {})
            for key, p in policies.items():
                means = [t.get("frame_time", {}).get("publish + delivery", {}).get("wall_ms")
                         for t in p.get("tasks", {}).values()]
                means = [m for m in means if m is not None]
                if not means:
                    continue
                seen += 1
                if min(means) > MEAN_MS:
                    hits.append(f"{path.parent}  {key}  " + " / ".join(f"{m:.1f}" for m in means))
    print(f"{seen} policies' benches (each of its replays) with the frame-time table; "
          f"{len(hits)} with every task's mean publish + delivery over {MEAN_MS:g} ms:")
    print("\n".join(hits))


if __name__ == "__main__":
    main(sys.argv[1:] or ["results/ros_bench"])
