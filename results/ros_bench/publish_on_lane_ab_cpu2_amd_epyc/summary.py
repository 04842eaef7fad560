"""The tables of this folder's README from its reports. From the repository's root:

    here=results/ros_bench/publish_on_lane_ab_cpu2_amd_epyc
    python3 $here/summary.py > $here/output.txt
"""
import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent


def runs(case: int) -> list[str]:
    """The run names of `ab.sh`'s case-th loop, in the order they ran."""
    loops = [line.split() for line in (HERE / "ab.sh").read_text().splitlines() if line.startswith("for run in")]
    names = loops[case]
    return [n.rstrip(";") for n in names[3:names.index("do")]]


def table(title: str, folder: Path, names: list[str]) -> None:
    print(f"## {title} (ms of CPU per frame received)\n")
    print("| run | outside model stages | of which host work | coordinator | executor | results thread | lanes minus "
          "stages | detector misses | e2e p99 ms | dropped det / signs / seg | goodput fps | throughput fps |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    outside: dict[str, list[float]] = {}
    for name in names:
        a = json.loads((folder / name / "report.json").read_text())["policies"]["aaron"]
        t, c = a["tasks"], a["cpu_ms_per_frame"]
        outside.setdefault(name.split("_")[0], []).append(a["cpu_outside_stages_ms_per_frame"])
        print(f"| {name} | {a['cpu_outside_stages_ms_per_frame']:.2f} | {a['cpu_host_ms_per_frame']:.2f} "
              f"| {a['cpu_coordinator_ms_per_frame']:.2f} | {c['executor']:.2f} | {c.get('results', 0.0):.2f} "
              f"| {c['lanes'] - a['cpu_stages_ms_per_frame']:.2f} | {a['critical_miss_rate'] * 100:.1f}% "
              f"| {a['critical_e2e_p99_ms']:.1f} | {t['detector']['dropped']} / {t['signs']['dropped']} / "
              f"{t['segmentation']['dropped']} | {a['goodput_fps']:.1f} | {a['throughput_fps']:.1f} |")
    print()
    for side, vals in outside.items():
        print(f"- {side}: outside model stages {min(vals):.2f}-{max(vals):.2f}, median {statistics.median(vals):.2f}")
    print()


table("Stress case (f1tenth)", HERE, runs(0))
table("Light case (f1tenth_light)", HERE / "light", runs(1))
print("# same_code/: the first try, both sides the patched code (an A/A), minutes before\n")
table("Stress case (f1tenth), A/A", HERE / "same_code", runs(0))
table("Light case (f1tenth_light), A/A (cut short)", HERE / "same_code" / "light", ["thread_1", "lane_1", "lane_2"])
