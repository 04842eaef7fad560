"""CPU per thread group of an f1tenth container (`aaron-ros run`, policy aaron, in this process), in
ms per frame a component received, between two files appearing in SIGNALS (`go`: the bag starts;
`stop`: it has ended). MODE: asis; nopub (each result built but not published: without the results
threads' publish call); nobuild (neither built nor published); readonly (each image taken and
read, handed to no component); takeonly (each image taken, not even read); nosubmit (each
frame taken by its components, never handed to the coordinator). Run by ab.sh from a
checkout's root.

    thread_cpu.py SECONDS MODE SIGNALS
"""
from __future__ import annotations

import collections
import os
import sys
import threading
import time

from aaron_ros.common.cpu import thread_cpu
from aaron_ros.coordinator import service
from aaron_ros.ros import perception, shared_input
from aaron_ros.ros import run as run_module

FRAMES = 900  # the sample bag's 300 images, each received by three components
GROUPS = ("results", "lane", "MainThread", "dds", "clock")


class _NotPublished:
    """The component's result publisher, without the publishing: a fault injected to measure it."""

    def __init__(self, pub):
        self._pub = pub

    def publish(self, msg) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self._pub, name)


def main(seconds: float, mode: str, signals: str) -> None:
    publish = perception.PerceptionComponent._publish

    def patched(self, rec, result, frame) -> None:
        if mode == "nobuild":
            self.counters["published"] += 1
            return
        if mode == "nopub" and not isinstance(self._pub, _NotPublished):
            self._pub = _NotPublished(self._pub)
        publish(self, rec, result, frame)

    perception.PerceptionComponent._publish = patched

    def images_to_nobody(self, data, info=None) -> None:
        if isinstance(data, tuple):
            data, info = data
        if mode == "readonly":
            self._read(data)
            self._lost_before(info)

    if mode in ("readonly", "takeonly"):
        shared_input._Topic._on_data = images_to_nobody
    if mode == "nosubmit":
        service.CoordinatorService.submit = lambda *args, **kwargs: None
    snaps = []

    def watch() -> None:
        for name in ("go", "stop"):
            while not os.path.exists(os.path.join(signals, name)):
                time.sleep(0.05)
            snaps.append(thread_cpu(os.getpid()))

    threading.Thread(target=watch, daemon=True).start()
    run_module.run("config/f1tenth.yaml", duration_s=seconds, table=False)
    spent = collections.Counter()
    for tid, (name, cpu_s) in snaps[1].items():
        group = next((g for g in GROUPS if name.startswith(g)), "other")
        spent[group] += cpu_s - snaps[0].get(tid, (name, 0.0))[1]
    print(mode, {g: round(s * 1e3 / FRAMES, 3) for g, s in sorted(spent.items())}, "ms per frame received")


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2], sys.argv[3])
