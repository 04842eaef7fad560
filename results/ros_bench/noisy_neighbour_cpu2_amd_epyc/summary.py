"""Per run folder and policy: detector misses, e2e p99, throughput, goodput, and the frames each
task dropped (of which too late). From the repository's root:

    cd results/ros_bench/noisy_neighbour_cpu2_amd_epyc && ../../../.venv/bin/python summary.py */
"""
import json
import sys
from pathlib import Path

for folder in map(Path, sys.argv[1:]):
    report = json.loads((folder / "report.json").read_text())
    for policy, p in report["policies"].items():
        dropped = ", ".join(f"{t} {m['dropped']} ({m['dropped_too_late']})" for t, m in p["tasks"].items())
        print(f"{folder.name:16} {policy:8} detector misses {p['critical_miss_rate'] * 100:4.1f}%, e2e p99 "
              f"{p['critical_e2e_p99_ms']:5.1f} ms, throughput {p['throughput_fps']:4.1f}, goodput "
              f"{p['goodput_fps']:4.1f}; dropped: {dropped}")
