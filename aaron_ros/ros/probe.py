"""A third participant on a domain, in a process of its own, and the domain's ports: where two
nodes never discover each other (the bench's node and the container, or a user's subscriber and
the container), what a fresh participant sees and who holds the domain's discovery port say
which side is deaf.

    python -m aaron_ros.ros.probe DOMAIN TOPIC [SECONDS]

prints one JSON line: the nodes it saw and how many publishers of TOPIC, once it sees one or
after SECONDS.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from aaron_ros.ros.domain import discovery_port, udp_sockets

PROBE_S = 8.0  # a healthy pair discovers each other in under 1 s
PROBE_NODE = "aaron_probe"


@dataclass(frozen=True)
class Seen:
    """What a fresh participant on the domain saw."""

    nodes: tuple[str, ...]
    publishers: int  # of the topic asked about

    def __str__(self) -> str:
        nodes = ", ".join(self.nodes) if self.nodes else "no node"
        return f"{nodes}; {self.publishers} publisher(s)"


def probe(domain: int, topic: str, seconds: float = PROBE_S) -> Seen | str:
    """Ask a fresh process on `domain`; the reason where it gave no answer."""
    cmd = [sys.executable, "-m", __name__, str(domain), topic, str(seconds)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30.0)
    except subprocess.TimeoutExpired:
        return f"no answer within {seconds + 30.0:g} s"
    try:
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        return Seen(tuple(seen["nodes"]), seen["publishers"])
    except (IndexError, ValueError, KeyError):
        return f"exited with code {done.returncode}: {done.stderr.strip()[-300:]}"


def other_nodes(node) -> list[str]:
    """The fully qualified names of the nodes `node` sees, itself left out."""
    return sorted({f"{ns.rstrip('/')}/{n}" for n, ns in node.get_node_names_and_namespaces()}
                  - {node.get_fully_qualified_name()})


def ports_held(domain: int, pids: dict[int, str]) -> str:
    """Who of `pids` ({pid: name}) holds the domain's multicast discovery port, and who else."""
    port = discovery_port(domain)
    holders = udp_sockets(port)
    named = [pids.get(pid, f"pid {pid}") for pid in holders]
    return f"port {port} held by {', '.join(named) if named else 'no process'}"


def main(argv: list[str]) -> None:
    import rclpy  # here: importing the module must not need ROS

    domain, topic, seconds = int(argv[0]), argv[1], float(argv[2]) if len(argv) > 2 else PROBE_S
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node(PROBE_NODE, context=context)
    end = time.monotonic() + seconds
    # Node names come after the endpoints (on ros_discovery_info): wait for both.
    while (node.count_publishers(topic) == 0 or not other_nodes(node)) and time.monotonic() < end:
        time.sleep(0.1)
    time.sleep(0.5)  # the rest of the graph
    print(json.dumps({"nodes": other_nodes(node), "publishers": node.count_publishers(topic)}), flush=True)
    os._exit(0)  # a DDS teardown can hang (aaron_ros/common/bounded.py); nothing here needs one


if __name__ == "__main__":
    main(sys.argv[1:])
