"""Per run folder and policy: the detector's node latency in each replay's first 5 measured frames
(a replay starts where the stamps jump by over 0.5 s) against the rest, and the run's critical
miss rate and CPU outside the model stages. From the repository's root:

    cd results/ros_bench/lead_in_ab_cpu2_amd_epyc && ../../../.venv/bin/python starts.py lead*
"""
import json
import statistics
import sys
from pathlib import Path

FIRST = 5
DEADLINE_MS = 50.0

for folder in map(Path, sys.argv[1:]):
    rows_by_policy = json.loads((folder / "detector_latencies.json").read_text())["detector"]
    report = json.loads((folder / "report.json").read_text())
    for policy, rows in rows_by_policy.items():
        starts = [0] + [k for k in range(1, len(rows)) if rows[k][0] - rows[k - 1][0] > 5e8]
        near = {k for s in starts for k in range(s, min(s + FIRST, len(rows)))}
        first = [rows[k][1] for k in sorted(near)]
        rest = [rows[k][1] for k in range(len(rows)) if k not in near]
        p = report["policies"][policy]
        print(f"{folder.name:8} {policy:6} miss {p['critical_miss_rate'] * 100:4.1f}% | first {FIRST}: mean "
              f"{statistics.mean(first):5.1f}, max {max(first):5.1f}, over {DEADLINE_MS:g} ms "
              f"{sum(x > DEADLINE_MS for x in first)}/{len(first)} | the rest: mean {statistics.mean(rest):5.1f}, "
              f"over {sum(x > DEADLINE_MS for x in rest)}/{len(rest)} | outside the stages "
              f"{p['cpu_outside_stages_ms_per_frame']:.2f} ms")
