"""Probes: small fixed units of work on one channel, to measure the pressure a foreground version
puts on that channel (time the probe alone, then beside the version: the ratio is the pressure).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .generators import LOWEST_PRIORITY
from .levels import check_kind, resolve_device
from .workloads import compute_workload, memory_workload

PROBE_KINDS = ("compute", "memory")
# Workload passes per probe call, chosen for a few milliseconds on a current machine (CPU: ~5 ms
# of matmuls, one ~6 ms streaming pass over 2 x 64 MB; CUDA: a couple of milliseconds each).
PROBE_PASSES: dict[str, dict[str, int]] = {
    "cpu": {"compute": 96, "memory": 1},
    "cuda": {"compute": 16, "memory": 32},
}


def make_probe(kind: str, device: str | torch.device = "cpu") -> Callable[[], None]:
    """A probe of `kind` on `device`; each call does the same work and returns when it is done.

    CPU probes run on one intra-op thread of the calling thread (its own budget is restored
    after the call). CUDA probes run on a stream of their own and wait on its event only.
    """
    check_kind(kind, allowed=PROBE_KINDS)
    dev = resolve_device(device)
    make = compute_workload if kind == "compute" else memory_workload
    if dev.type == "cuda":
        stream = torch.cuda.Stream(device=dev, priority=LOWEST_PRIORITY)
        with torch.cuda.stream(stream):  # buffers filled on the stream that later reads them
            work = make(dev)
    else:
        work = make(dev)
    steps = PROBE_PASSES[dev.type][kind] * work.steps_per_pass

    def run_steps() -> None:
        with torch.inference_mode():
            for _ in range(steps):
                work.step()

    if dev.type == "cuda":
        def probe() -> None:
            done = torch.cuda.Event(blocking=True)  # blocking: wait without spinning a core
            with torch.cuda.stream(stream):
                run_steps()
                done.record(stream)
            done.synchronize()
    else:
        def probe() -> None:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                run_steps()
            finally:
                torch.set_num_threads(threads)

    return probe
