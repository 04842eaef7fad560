"""This folder's table from its reports (ab.sh), in the order run. From the repository's root:

    here=results/ros_bench/opencv_threads_ab_cpu2_amd_epyc
    python3 $here/summary.py > $here/output.txt
"""
import json
from pathlib import Path

HERE = Path(__file__).parent
orders = [line.split() for line in (HERE / "ab.sh").read_text().splitlines() if line.startswith("for run in")]


def table(title: str, folder: Path, order: list[str]) -> None:
    runs = [r.rstrip(";") for r in order[3:order.index("do")]]
    print(f"{title}, ms of CPU per frame received (rounds in the order run)\n")
    print("| run | OpenCV threads | outside model stages | of which host work | coordinator | executor | results "
      "| lanes minus stages | detector misses | e2e p99 ms | dropped | throughput fps |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        a = json.loads((folder / run / "report.json").read_text())["policies"]["aaron"]
        c, t = a["cpu_ms_per_frame"], a["tasks"]
        print(f"| {run} | {1 if run.startswith('one') else 2} | {a['cpu_outside_stages_ms_per_frame']:.2f} "
              f"| {a['cpu_host_ms_per_frame']:.2f} | {a['cpu_coordinator_ms_per_frame']:.2f} | {c['executor']:.2f} "
              f"| {c['results']:.2f} | {c['lanes'] - a['cpu_stages_ms_per_frame']:.2f} "
              f"| {a['critical_miss_rate'] * 100:.1f}% | {a['critical_e2e_p99_ms']:.1f} "
              f"| {sum(x['dropped'] for x in t.values())} | {a['throughput_fps']:.1f} |")
    print()


table("aaron on the ROS stress case (f1tenth)", HERE, orders[0])
table("aaron on the light case (f1tenth_light)", HERE / "light", orders[1])
