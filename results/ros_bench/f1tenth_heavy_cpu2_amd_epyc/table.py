"""The heavy case's benches side by side, one line per bench and policy: each report.json under
FOLDER (a folder per bench), in name order. From this folder:

    python3 table.py benches > benches/output.md
    python3 table.py stage_size_ab > stage_size_ab/output.md
"""
import json
import sys
from pathlib import Path

print("| bench | policy | detector misses | detector e2e p99 ms | goodput fps | throughput fps "
      "| sign frames dropped | goodput, rank in the bench |")
print("|---|---|---|---|---|---|---|---|")
for report in sorted(Path(sys.argv[1]).glob("*/report.json")):
    policies = json.loads(report.read_text())["policies"]
    ranked = sorted(policies, key=lambda k: -policies[k]["goodput_fps"])
    for key, p in policies.items():
        print(f"| {report.parent.name} | {key} | {p['critical_miss_rate'] * 100:.1f}% "
              f"| {p['critical_e2e_p99_ms']:.1f} | {p['goodput_fps']:.1f} | {p['throughput_fps']:.1f} "
              f"| {p['tasks']['signs']['dropped']} | {ranked.index(key) + 1} of {len(ranked)} |")
