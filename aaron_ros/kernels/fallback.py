"""What a model runs with when its kernel bag cannot be used: eager versions, fused and timed here.

The model's own stages are fine cuts (tiny_yolo: 9), and eager versions on one thread with no
profile left the coordinator nothing to choose with. Measured on 2 cores, `aaron-ros run
config/f1tenth.yaml --bag data/sample_bag`, the detector's bag unusable: its own 9 stages, 1 thread,
unprofiled: 30-36% of its deadlines missed; eager versions of the bag's 2 stages on 1 thread: 15%;
on 1 and 2 threads, profiled: 0%. So the fallback is a small eager-only bag built in a temporary
folder, as `compile` builds one: stages fused to at least MIN_STAGE_MS by their eager time, a
version per thread budget, each timed alone (tiny_yolo 1.0 s, seg_net 0.5 s here).
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import torch

from aaron_ros.kernels.bag import BagError, KernelBag, eager_bag, load_bag
from aaron_ros.kernels.compile import MIN_STAGE_MS, CompileOptions, compile_bag
from aaron_ros.models import StageGraph

log = logging.getLogger(__name__)


def load_bag_or_eager(bag_dir: str | Path | None, graph: StageGraph,
                      device: torch.device | str = "cpu") -> KernelBag:
    """The runtime's way in: a bag that cannot be used gives timed eager versions and a warning."""
    if bag_dir is None:
        return timed_eager_bag(graph, "no kernel bag configured", device)
    try:
        bag = load_bag(bag_dir, graph, device)
        if bag.manifest.min_stage_ms is None:  # finer stages cost the container more CPU a frame
            log.info("kernel bag %s: built before bags said their stage size; `aaron-ros compile` now fuses "
                     "stages to at least %g ms (fewer grants, less CPU): build it again, in a new folder or "
                     "after removing this one, to take that", bag_dir, MIN_STAGE_MS)
        return bag
    except BagError as exc:
        why = str(exc)
    except Exception as exc:  # damage no check foresaw: the model still serves, eager
        why = f"kernel bag {bag_dir} cannot be read: {type(exc).__name__}: {exc}"
    log.warning("%s; falling back to eager versions for %s", why, graph.name)
    return timed_eager_bag(graph, why, device)


def timed_eager_bag(graph: StageGraph, reason: str, device: torch.device | str = "cpu") -> KernelBag:
    """Eager versions of fused stages at every thread budget, timed alone; the model's own
    stages, untimed, if even that fails."""
    start = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="aaron_eager_") as tmp:
            opts = CompileOptions(device=str(device), backends=("eager",), kinds=(), reps=5, min_reps=3, warmup=1,
                                  progress=False)
            compile_bag(graph, tmp, opts)
            bag = load_bag(tmp, graph, device, verify=False)  # eager versions are the reference itself
    except Exception as exc:  # e.g. a model whose stages cannot be timed here
        log.warning("%s: eager versions could not be timed (%s: %s); its own stages, untimed", graph.name,
                    type(exc).__name__, exc)
        return eager_bag(graph, reason)
    bag.manifest, bag.fallback_reason = None, reason
    log.info("%s: eager versions of %d stages timed in %.1f s", graph.name, len(bag.graph.stages),
             time.monotonic() - start)
    return bag
