"""Which ROS domains discovery can rely on on this machine.

DDS finds the other participants of domain d on UDP port 7400 + 250 d (multicast, the RTPS port
mapping). Where that port lies in the kernel's ephemeral range, any process's outgoing UDP socket
may hold it; a participant created then hears no discovery at all: it is up, and no node on the
domain ever sees it. Holding that one port with a plain socket reproduces it on demand
(`results/ros_bench/container_starts_cpu2_amd_epyc/`). Linux's default range, 32768-60999, holds
the ports of domains 102-214: ROS 2's own advice is domains 0-101.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

DEFAULT_EPHEMERAL = range(32768, 61000)  # Linux's default ip_local_port_range
PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def discovery_port(domain: int) -> int:
    """The domain's multicast discovery port (RTPS: PB 7400 + DG 250 x domain + d0 0)."""
    return 7400 + 250 * domain


def ephemeral_ports() -> range:
    """The ports the kernel hands out to sockets bound to port 0."""
    try:
        low, high = (int(x) for x in PORT_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return range(low, high + 1)


def domain_risk(domain: int, ephemeral: range | None = None) -> str | None:
    """Why discovery on `domain` may fail on this machine, or None where it cannot be taken."""
    ephemeral = ephemeral_ports() if ephemeral is None else ephemeral
    port = discovery_port(domain)
    if port not in ephemeral:
        return None
    return (f"ROS domain {domain}'s discovery port {port} is in this machine's ephemeral port range "
            f"({ephemeral.start}-{ephemeral.stop - 1}): when another process's socket holds it, a node started "
            f"on the domain finds no other node. ROS 2 advises domains 0-101")


def _udp_bound() -> dict[int, set[str]]:
    """Every UDP port a socket on this machine is bound to, with those sockets' inodes (Linux's /proc)."""
    bound: dict[int, set[str]] = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            bound.setdefault(int(fields[1].rsplit(":", 1)[1], 16), set()).add(fields[9])
    return bound


def domains_in_use(domains: Iterable[int]) -> set[int]:
    """Those of `domains` whose discovery port a socket on this machine holds: a participant of
    some process is on the domain (or a socket that would leave a new one deaf)."""
    bound = _udp_bound()
    return {d for d in domains if discovery_port(d) in bound}


def udp_sockets(port: int) -> list[int]:
    """The processes holding a UDP socket bound to `port` on this machine, one entry a socket
    (Linux's /proc; those this process may not look into are left out)."""
    inodes = _udp_bound().get(port)
    if not inodes:
        return []
    holders = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:  # closed since
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                holders.append(int(fd_dir.parent.name))
    return holders
