"""The heavy case's benches side by side, one line per run and policy. From this folder:

    python3 table.py > output.md
"""
import json
from pathlib import Path

HERE = Path(__file__).parent

print("| run | policy | detector misses | detector e2e p99 ms | goodput fps | throughput fps "
      "| sign frames dropped | goodput, rank in the run |")
print("|---|---|---|---|---|---|---|---|")
for run in sorted(HERE.glob("run_*/report.json")):
    policies = json.loads(run.read_text())["policies"]
    ranked = sorted(policies, key=lambda k: -policies[k]["goodput_fps"])
    for key, p in policies.items():
        print(f"| {run.parent.name.removeprefix('run_')} | {key} | {p['critical_miss_rate'] * 100:.1f}% "
              f"| {p['critical_e2e_p99_ms']:.1f} | {p['goodput_fps']:.1f} | {p['throughput_fps']:.1f} "
              f"| {p['tasks']['signs']['dropped']} | {ranked.index(key) + 1} of {len(ranked)} |")
