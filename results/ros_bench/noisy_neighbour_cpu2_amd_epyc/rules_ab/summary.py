"""The four sizing rules tried against `aaron` as it is, each in the same bench (interleaved
replays), per run: detector misses, e2e p99, throughput, goodput and normal frames dropped; then,
per rule, its sums against `aaron`'s in the same runs. From this folder:

    ../../../../.venv/bin/python summary.py
"""
import json
from pathlib import Path

RULES = {"main": "aaron as it is (4208250)", "a": "a: spend the slack on the first stages",
         "b": "b: a + the margin learns only from sized frames", "c": "c: b + a normal stage squeezes in",
         "d": "d: no live-tail room in the fit"}
# Per run: the policy names in its report, as the rules they ran (the variants were registered
# under these names for the run; `aaron_old` is the unchanged rule).
RUNS = {"nb40_1": {"aaron": "b", "aaron_mix": "a"},  # aaron_old failed to load in this run: left out
        "nb40_2": {"aaron": "b", "aaron_mix": "a", "aaron_old": "main"},
        "0_1": {"aaron": "b", "aaron_mix": "a", "aaron_old": "main"},
        "nb40_3": {"aaron": "c", "aaron_mix": "a", "aaron_old": "main"},
        "nb40_4": {"aaron": "a", "aaron_old": "main"},
        "nb40_5": {"aaron": "d", "aaron_old": "main"},
        "0_2": {"aaron": "d", "aaron_old": "main"},
        "nb40_6": {"aaron": "d", "aaron_old": "main"},
        "0_3": {"aaron": "d", "aaron_old": "main"},
        "nb25_1": {"aaron": "d", "aaron_old": "main"}}

NEIGHBOUR = {"nb40": "40% of a core", "nb25": "25% of a core", "0": "none"}
sums = {}
print("| run | neighbour | rule | detector misses | e2e p99 ms | throughput | goodput | normal frames dropped |")
print("|---|---|---|---|---|---|---|---|")
for run, names in RUNS.items():
    report = json.loads((Path(run) / "report.json").read_text())
    seen = {}
    for policy, p in report["policies"].items():
        rule = names.get(policy, policy)  # elastic, naive
        if policy.startswith("aaron") and policy not in names:
            continue
        dropped = sum(m["dropped"] for t, m in p["tasks"].items() if t != "detector")
        seen[rule] = (p["critical_miss_rate"] * 100, dropped)
        print(f"| {run} | {NEIGHBOUR[run.split('_')[0]]} | {RULES.get(rule, rule)} | "
              f"{p['critical_miss_rate'] * 100:.1f}% | {p['critical_e2e_p99_ms']:.1f} | {p['throughput_fps']:.1f} | "
              f"{p['goodput_fps']:.1f} | {dropped} |")
    if "main" in seen:
        for rule in set(seen) & set("abcd"):
            s = sums.setdefault(rule, [0, 0.0, 0, 0.0, 0])
            s[0] += seen[rule][1]
            s[1] += seen[rule][0]
            s[2] += seen["main"][1]
            s[3] += seen["main"][0]
            s[4] += 1
print("\n| rule | runs beside aaron as it is | normal frames dropped: rule / as it is | "
      "mean detector misses: rule / as it is |")
print("|---|---|---|---|")
for rule, (d, m, d0, m0, n) in sorted(sums.items()):
    print(f"| {RULES[rule]} | {n} | {d} / {d0} | {m / n:.1f}% / {m0 / n:.1f}% |")
