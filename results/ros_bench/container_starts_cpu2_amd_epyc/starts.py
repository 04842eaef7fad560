"""How long the bench's container takes to report, and how often its status is never heard:
the bench's own start (`BenchSystem`: the container of a parameter file in a process of its own,
the monitor here), as the demo does it: each component alone, then all of them, on a fresh domain
each, again and again. Each start waits for the container's first status, then stops it; with
--play, after playing the bag into it once, as a bench does. Where its status is not heard within
UNHEARD_S of its saying it is up, the bench asks a fresh node in a process of its own what it
sees: the bench's warning, in this output, says so, and says when the bench's node was replaced
because only it was deaf. One not heard then (or within --timeout of its start) has its threads'
stacks written into its log (kept in OUT/logs) and is counted silent, with what was seen.
Every process runs on the transports FASTDDS_BUILTIN_TRANSPORTS names (LARGE_DATA where unset).

    PYTHONPATH=. .venv/bin/python results/ros_bench/container_starts_cpu2_amd_epyc/starts.py \
        --config f1tenth_heavy --rounds 10 [--play] --out /tmp/starts > output.txt
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from aaron_ros.bench.driver import ISOLATION_POLICY, ISOLATION_VERSIONS
from aaron_ros.common.paths import find_config
from aaron_ros.ros.bench import system
from aaron_ros.ros.bench.system import BenchSystem, ContainerSilent, single_component_config
from aaron_ros.ros.bench.target import private_domain
from aaron_ros.ros.config import load_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="f1tenth_heavy")
    ap.add_argument("--bag", default="data/sample_bag")
    ap.add_argument("--kernel-bags", default="kernel_bags")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a first status")
    ap.add_argument("--play", action="store_true", help="play the bag into each container once, then close it")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    system.START_TIMEOUT_S = args.timeout
    config = find_config(args.config)
    names = [c.name for c in load_config(config).components]
    up: dict[str, list[float]] = {}
    down: list[float] = []
    silent: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        files = {n: single_component_config(config, n, Path(work)) for n in names} | {"all": config}
        for r in range(args.rounds):
            for name, path in files.items():
                domain = private_domain()  # the bench's own range
                t0 = time.monotonic()
                try:
                    s = BenchSystem(path, Path(args.bag), Path(work), kernel_bag_dir=args.kernel_bags,
                                    domain_id=domain, log_dir=args.out / "logs")
                except ContainerSilent as exc:
                    silent.append(str(exc))
                    print(f"round {r} {name}: SILENT: {exc}", flush=True)
                    continue
                t1 = time.monotonic()
                if args.play:
                    s.replay(ISOLATION_POLICY, ISOLATION_VERSIONS)
                s.close()
                t2 = time.monotonic()
                up.setdefault(name, []).append(t1 - t0)
                down.append(t2 - t1)
                print(f"round {r} {name} (domain {domain}): status after {t1 - t0:.1f} s, closed in {t2 - t1:.1f} s",
                      flush=True)
    print(f"\n{sum(len(v) for v in up.values()) + len(silent)} starts of {config.name}'s containers, "
          f"{len(silent)} silent within {args.timeout:g} s")
    for name, v in up.items():
        print(f"{name}: first status after median {statistics.median(v):.1f} s, max {max(v):.1f} s ({len(v)} starts)")
    what = "playing the bag once and closing" if args.play else "closing"
    print(f"{what} (camera, container, monitor): median {statistics.median(down):.1f} s, max {max(down):.1f} s")


if __name__ == "__main__":
    main()
