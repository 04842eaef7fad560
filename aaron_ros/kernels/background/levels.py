"""What each contention kind runs at each level, as data, and how a request resolves to a load.

Levels are relative to the machine: on CPU, `heavy` takes every core this process may use; on CUDA,
levels differ in duty cycle and in how many low-priority streams queue work at once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

ISOLATION = "isolation"  # no background: the condition every other is compared with
LOADED_LEVELS = ("light", "medium", "heavy")
LEVELS = (ISOLATION, *LOADED_LEVELS)
KINDS = ("compute", "memory", "model")
PER_CORE = -1  # worker count meaning "one per CPU core"


@dataclass(frozen=True)
class Intensity:
    workers: int  # CPU worker threads or CUDA streams (PER_CORE: one per core)
    duty: float  # share of each work-and-pause period spent working (1.0: flat out)


# Compute and memory kinds. CPU: light leaves most of a core free, medium takes one core, heavy
# takes them all. CUDA: one stream cannot fill the device's queues the way several can, so the
# higher levels add streams.
CPU_LEVELS: dict[str, Intensity] = {
    "isolation": Intensity(workers=0, duty=0.0),
    "light": Intensity(workers=1, duty=0.5),
    "medium": Intensity(workers=1, duty=1.0),
    "heavy": Intensity(workers=PER_CORE, duty=1.0),
}
CUDA_LEVELS: dict[str, Intensity] = {
    "isolation": Intensity(workers=0, duty=0.0),
    "light": Intensity(workers=1, duty=0.5),
    "medium": Intensity(workers=2, duty=1.0),
    "heavy": Intensity(workers=4, duty=1.0),
}
# Model kind (the papers' setting): real zoo models looping flat out, one worker each.
MODEL_LEVELS: dict[str, tuple[str, ...]] = {
    "isolation": (),
    "light": ("mobilenet_v3_small",),
    "medium": ("mobilenet_v3_small", "shufflenet_v2"),
    "heavy": ("mobilenet_v3_small", "shufflenet_v2", "resnet18"),
}


@dataclass(frozen=True)
class Load:
    """One kind at one level on one device, resolved for this machine."""

    kind: str
    level: str
    device: torch.device
    workers: int
    duty: float
    models: tuple[str, ...] = ()  # model kind: the model each worker loops over


def cores() -> int:
    """CPU cores this process may run on: fewer than os.cpu_count() under taskset or a container
    cpuset, and `heavy` must not count cores it cannot use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_kind(kind: str, allowed: tuple[str, ...] = KINDS) -> str:
    if kind not in allowed:
        raise ValueError(f"contention kind must be one of {', '.join(allowed)}; got {kind!r}")
    return kind


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"contention level must be one of {', '.join(LEVELS)}; got {level!r}")
    return level


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' is CUDA when a device is present, else CPU; a bare 'cuda' is the current device."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"contention device must be 'auto', 'cpu' or a CUDA device; got {device!r}")
    if not torch.cuda.is_available():
        raise RuntimeError(f"contention on {device!r} needs a CUDA device, and none is available")
    return torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)


def load_for(kind: str, level: str, device: str | torch.device = "cpu") -> Load:
    check_kind(kind)
    check_level(level)
    dev = resolve_device(device)
    if kind == "model":
        models = MODEL_LEVELS[level]
        return Load(kind, level, dev, workers=len(models), duty=1.0, models=models)
    intensity = (CUDA_LEVELS if dev.type == "cuda" else CPU_LEVELS)[level]
    workers = cores() if intensity.workers == PER_CORE else intensity.workers
    return Load(kind, level, dev, workers=workers, duty=intensity.duty)
