"""The tables of this folder's README from its reports. From the repository's root:

    here=results/ros_bench/opencv_tail_ab_cpu2_amd_epyc
    python3 $here/summary.py > $here/output.txt
"""
import json
from pathlib import Path

HERE = Path(__file__).parent


def part(ft: dict, name: str) -> str:
    cpu = ft[name].get("cpu_ms")
    return f"{ft[name]['wall_ms']:.1f}" + (f" ({cpu:.1f})" if cpu is not None and cpu == cpu else "")


def table(title: str, folder: Path, runs: list[str]) -> None:
    print(f"## {title}\n")
    print("| run | detector misses | detector e2e p99 ms | its mean frame ms | its tail: conversion (CPU) | "
          "to lane | stages (CPU) | tail sum ms | signs / segmentation e2e p99 ms | goodput fps | "
          "CPU outside the model stages |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        a = json.loads((folder / run / "report.json").read_text())["policies"]["aaron"]
        t = a["tasks"]
        mean, tail = t["detector"]["frame_time"], t["detector"]["frame_time_tail"]
        print(f"| {run} | {a['critical_miss_rate'] * 100:.1f}% | {t['detector']['e2e_p99_ms']:.1f} "
              f"| {sum(v['wall_ms'] for v in mean.values()):.1f} | {part(tail, 'conversion')} "
              f"| {part(tail, 'to lane')} | {part(tail, 'stages')} | {sum(v['wall_ms'] for v in tail.values()):.1f} "
              f"| {t['signs']['e2e_p99_ms']:.1f} / {t['segmentation']['e2e_p99_ms']:.1f} | {a['goodput_fps']:.1f} "
              f"| {a['cpu_outside_stages_ms_per_frame']:.2f} |")
    print()


table("OpenCV's pool (as it was) against OpenCV on the calling thread", HERE,
      ["caller_1", "pool_1", "pool_2", "caller_2", "caller_3", "pool_3"])
table("The interpreter's switch interval: 5 ms (default) against 0.5 ms", HERE / "switch_interval",
      ["default_1", "short_1", "short_2", "default_2", "default_3", "short_3"])
