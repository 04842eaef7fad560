"""Every fresh-clone `./scripts/demo` kept here, one line per run and case, oldest first: how
`aaron` did against the issue's goals beside the other policies of the same run. The others'
critical misses say how busy the machine was that hour (each run interleaves the policies, so
they share it). From the repository's root:

    python3 results/ros_bench/demo_runs.py > results/ros_bench/demo_runs.md
"""
import json
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
# The runs whose folder does not name their commit.
COMMITS = {"report.json": "b8ebd85", "earlier_run": "d991196"}
CASES = ("f1tenth", "f1tenth_light", "f1tenth_heavy")
RUNS = ("report.json", "demo_*/report.json", "earlier_run/report.json")  # a case's folder: its demos only
# Runs on a machine unlike the others, said under the table.
SLOW = {"f5363fe": "the machine ran every model about three times slower than on the other runs "
                   "(`../kernel_bags/partition_stability_cpu2_amd_epyc/output_slow_machine.txt`), and the kernel "
                   "bags built that hour split tiny_yolo and seg_net into two stages: not comparable with the rest",
        "f194531": "the same slow machine, named in the report since `bac5cb6`: AMD EPYC, 2 cores, AVX2 FMA (no "
                   "AVX-512); the detector alone at p50 32-35 ms (15.5 in `d64579c`'s run), ResNet-18 at 59 ms (10.0): "
                   "not comparable with the rest"}


def commit_of(report: Path) -> str:
    name = report.parent.name if report.parent.name.startswith(("demo_", "earlier")) else report.name
    return COMMITS.get(name, name.removeprefix("demo_"))


def when(commit: str) -> str:
    return subprocess.run(["git", "log", "-1", "--format=%ci", commit], capture_output=True, text=True,
                          check=True).stdout[:16]


def line(report: Path) -> str:
    data = json.loads(report.read_text())
    policies, iso = data["policies"], data.get("isolation", {})
    aaron, others = policies["aaron"], {k: v for k, v in policies.items() if k != "aaron"}
    critical = next(t["name"] for t in data["workload"]["tasks"] if t["criticality"] == "critical")
    alone = iso.get(critical, {}).get("miss_rate")  # recorded since the report had it
    miss = [v["critical_miss_rate"] * 100 for v in others.values()]
    best = max(others, key=lambda k: others[k]["goodput_fps"])
    deadline = next(t["deadline_ms"] for t in aaron["tasks"].values() if t["criticality"] == "critical")
    dropped = sum(t["dropped"] for t in aaron["tasks"].values() if t["criticality"] != "critical")
    return " | ".join([
        f"{aaron['critical_miss_rate'] * 100:.1f}%", f"{min(miss):.1f}-{max(miss):.1f}%",
        "-" if alone is None else f"{alone * 100:.1f}%",
        f"{aaron['critical_e2e_p99_ms']:.1f} ({deadline:g})",
        f"{aaron['goodput_fps']:.1f} / {others[best]['goodput_fps']:.1f} ({best})",
        f"{aaron['throughput_fps']:.1f} / {policies['naive']['throughput_fps']:.1f}",
        str(dropped), f"{aaron['cpu_outside_stages_ms_per_frame']:.2f}", f"{aaron['cpu_host_ms_per_frame']:.2f}"])


print("# The fresh-clone demos, run after run (2-core AMD EPYC)\n")
print("Made by `demo_runs.py`. The others' critical misses show how busy the machine was in that "
      "run's hour: a run interleaves its policies, so they share it. So does the host work (the "
      "frames' conversion and post-processing, compiled code doing the same work in every run since "
      "`41b378e`): it moves only with the machine's speed that hour. Since `b8ebd85` the bench reads the "
      "segmentation masks, so the container makes them: the host work and the CPU outside the stages "
      "include them from there on. The critical task alone: the share of its deadlines it missed in a "
      "container of its own: above zero, the case asked more of the machine that hour than it had "
      "(in the reports since it was added; \"-\" before).\n")
print("| commit (committed at) | case | `aaron` critical misses | the others' | the critical task alone "
      "| `aaron` critical e2e p99 ms (deadline) "
      "| goodput fps: `aaron` / the best other | throughput fps: `aaron` / naive "
      "| normal frames `aaron` dropped | CPU outside the model stages, ms per frame received "
      "| of which host work |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
runs = [(report, case) for case in CASES for pattern in RUNS
        for report in (HERE / f"{case}_cpu2_amd_epyc").glob(pattern)]
for report, case in sorted(runs, key=lambda r: (when(commit_of(r[0])), CASES.index(r[1]))):
    commit = commit_of(report)
    print(f"| `{commit}` ({when(commit)}) | {case} | {line(report)} |")
print("".join(f"\n- `{commit}`: {why}." for commit, why in SLOW.items()))
