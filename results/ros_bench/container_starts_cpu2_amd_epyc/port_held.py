"""The unheard container on demand: a plain UDP socket (no SO_REUSEADDR, as any process's socket
bound to port 0 may get) holds a port of domain D, then the bench starts the demo's detector
container on D (`BenchSystem`, as in starts.py) and waits for its first status; once with no
port held, once with the domain's unicast discovery and user ports (participants 0-3), once with
its multicast discovery port 7400 + 250 D. Domain D is in 102-214, whose discovery ports are in
Linux's ephemeral range.

    PYTHONPATH=. .venv/bin/python results/ros_bench/container_starts_cpu2_amd_epyc/port_held.py 180 > port_held.txt
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from aaron_ros.common.paths import find_config
from aaron_ros.ros.bench import system
from aaron_ros.ros.bench.system import BenchSystem, ContainerSilent, single_component_config
from aaron_ros.ros.domain import discovery_port


def held_ports(domain: int, which: str) -> list[int]:
    base = discovery_port(domain)
    return {"none": [], "unicast": [base + 10 + 2 * p + k for p in range(4) for k in (0, 1)],
            "multicast": [base]}[which]


def main() -> None:
    domain = int(sys.argv[1])
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    system.UNHEARD_S = 20.0
    with tempfile.TemporaryDirectory() as work:
        config = single_component_config(find_config("f1tenth_heavy"), "detector", Path(work))
        for which in ("none", "unicast", "multicast"):
            sockets = []
            for port in held_ports(domain, which):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("0.0.0.0", port))
                sockets.append(s)
            t0 = time.monotonic()
            try:
                BenchSystem(config, Path("data/sample_bag"), Path(work), kernel_bag_dir="kernel_bags",
                            domain_id=domain, log_dir=Path(work) / "logs").close()
                print(f"{which} held {held_ports(domain, which)}: status heard after {time.monotonic() - t0:.1f} s",
                      flush=True)
            except ContainerSilent as exc:
                print(f"{which} held {held_ports(domain, which)}: NEVER HEARD: {exc}", flush=True)
            for s in sockets:
                s.close()


if __name__ == "__main__":
    main()
