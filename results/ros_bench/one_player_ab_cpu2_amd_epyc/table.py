"""ab.sh's runs as one table: per run, its wall time (walls.txt, ab.sh's output) and per policy the
CPU outside the model stages, the critical end-to-end p99 and the slowest task's mean
publish + delivery, each from the run's own report.

    python results/ros_bench/one_player_ab_cpu2_amd_epyc/table.py OUT
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def main(out: str) -> None:
    walls = {f"{m[1]}_{m[2]}": float(m[3]) for m in
             re.finditer(r"^(\w+) round (\d+) rc \d+ wall ([0-9.]+) s$", (Path(out) / "walls.txt").read_text(), re.M)}
    print("| run | wall s | policy | outside model stages ms/frame | critical e2e p99 ms | "
          "slowest task's mean publish + delivery ms | results held over 50 ms |")
    print("|---|---|---|---|---|---|---|")
    for run, wall in walls.items():
        for name, p in json.loads((Path(out) / run / "report.json").read_text())["policies"].items():
            delivery = max(t["frame_time"]["publish + delivery"]["wall_ms"] for t in p["tasks"].values())
            print(f"| {run} | {wall:.1f} | {name} | {p['cpu_outside_stages_ms_per_frame']:.2f} | "
                  f"{p['critical_e2e_p99_ms']:.1f} | {delivery:.2f} | {sum(p['delivery_stalled'].values())} |")


if __name__ == "__main__":
    main(sys.argv[1])
