"""The tables of this folder's README from its reports. From the repository's root:

    here=results/ros_bench/stage_size_ab_cpu2_amd_epyc
    python3 $here/summary.py > $here/output.txt
"""
import json
from pathlib import Path

HERE = Path(__file__).parent


def runs(folder: str) -> list[tuple[str, dict]]:
    """(run name, report) in the order run: by round, then as the round ran (ab.sh)."""
    order = [line.split() for line in (HERE / "ab.sh").read_text().splitlines() if line.startswith("for run in")]
    names = {"first": order[0], "second": order[1], "core_f1tenth_heavy": order[2], "quiet": order[3]}[folder]
    names = [n.rstrip(";") for n in names[3:names.index("do")]]
    return [(n, json.loads((HERE / folder / n / "report.json").read_text())) for n in sorted(
        names, key=lambda n: (n.split("_")[1], names.index(n)))]


def ros(folder: str) -> None:
    print(f"## {folder}: aaron on the ROS stress case (ms of CPU per frame received)\n")
    print("| run | outside model stages | of which host work | coordinator | executor | results | lanes minus "
          "stages | detector misses | e2e p99 ms | dropped det / signs / seg | goodput fps | throughput fps |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in runs(folder):
        a = r["policies"]["aaron"]
        t, c = a["tasks"], a["cpu_ms_per_frame"]
        print(f"| {name} | {a['cpu_outside_stages_ms_per_frame']:.2f} | {a['cpu_host_ms_per_frame']:.2f} "
              f"| {a['cpu_coordinator_ms_per_frame']:.2f} | {c['executor']:.2f} | {c['results']:.2f} "
              f"| {c['lanes'] - a['cpu_stages_ms_per_frame']:.2f} | {a['critical_miss_rate'] * 100:.1f}% "
              f"| {a['critical_e2e_p99_ms']:.1f} | {t['detector']['dropped']} / {t['signs']['dropped']} / "
              f"{t['segmentation']['dropped']} | {a['goodput_fps']:.1f} | {a['throughput_fps']:.1f} |")
    print()


def core() -> None:
    print("## core_f1tenth_heavy: the core bench, f1tenth_heavy (ResNet-18 signs, offered beyond the cores)\n")
    print("| run | policy | detector misses | detector p99 ms | throughput fps | segmentation dropped |")
    print("|---|---|---|---|---|---|")
    for name, r in runs("core_f1tenth_heavy"):
        for policy, a in r["policies"].items():
            print(f"| {name} | {policy} | {a['critical_miss_rate'] * 100:.1f}% | {a['critical_p99_ms']:.1f} "
                  f"| {a['throughput_fps']:.1f} | {a['tasks']['segmentation']['dropped']} |")


ros("first")
ros("second")
ros("quiet")
core()
