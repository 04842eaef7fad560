"""ab.sh's (or as_filed/three_way.sh's) runs as one table: ms of CPU per frame a component
received, each side's own report; then, round by round, today's figure over each other side's.

    table.py OUT
"""
from __future__ import annotations

import json
import pathlib
import sys


def main(out: str) -> None:
    print("| round | side | policy | outside model stages | of which host work | whole container "
          "| model stages | detector misses | goodput fps |")
    print("|---|---|---|---|---|---|---|---|---|")
    runs = [(*report.parent.name.rsplit("_", 1), report) for report in pathlib.Path(out).glob("*_*/report.json")]
    outside: dict[tuple[str, str, str], float] = {}
    for side, rnd, report in sorted(runs, key=lambda r: (int(r[1]), r[0])):  # by round, then before, now
        for name, p in json.loads(report.read_text())["policies"].items():
            outside[rnd, name, side] = p["cpu_outside_stages_ms_per_frame"]
            host = p.get("cpu_host_ms_per_frame")
            print(f"| {rnd} | {side} | {name} | {p['cpu_outside_stages_ms_per_frame']:.2f} | "
                  f"{'' if host is None else f'{host:.2f}'} | {sum(p['cpu_ms_per_frame'].values()):.2f} | "
                  f"{p['cpu_stages_ms_per_frame']:.2f} | {p['critical_miss_rate']:.1%} | {p['goodput_fps']:.1f} |")
    print("\n| round | policy | against | its outside model stages | now's | now / it |")
    print("|---|---|---|---|---|---|")
    for (rnd, name, side), before in outside.items():
        now = outside.get((rnd, name, "now"))
        if side != "now" and now is not None:
            print(f"| {rnd} | {name} | {side} | {before:.2f} | {now:.2f} | {now / before:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
