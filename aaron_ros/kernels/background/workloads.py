"""Units of work that load one channel of a device, shared by the generators and the probes.

compute: matmuls on operands that stay in cache (CPU: 128x128 fp32, 192 KiB in all) or fill the
GPU's SMs (4096^2): high FLOP rate, little memory traffic.
memory: copies over buffers at least twice the last-level cache, so every pass streams from
DRAM: bandwidth-bound, little compute.
model: one forward pass of a zoo model.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

from aaron_ros.models import StageGraph, build_model

CPU_MATMUL = 128
CUDA_MATMUL = 4096
MIN_STREAM_BYTES = 64 << 20
CACHE_MULTIPLE = 2  # stream buffer vs last-level cache: a pass then never hits in the cache
CPU_CHUNK_BYTES = 4 << 20  # one CPU memory step: past the per-core L2, ~0.5 ms of copying


@dataclass(frozen=True)
class Workload:
    step: Callable[[], object]
    bytes_per_step: int = 0  # DRAM traffic one step is built to cause (read + write)
    steps_per_pass: int = 1  # steps to stream once over the whole buffer


def cpu_llc_bytes() -> int:
    """Size of this CPU's last-level cache (one instance), from sysfs; 0 where unknown."""
    best_level, size = 0, 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        value = int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
        if level > best_level or (level == best_level and value > size):
            best_level, size = level, value
    return size


def stream_bytes(device: torch.device) -> int:
    """Size of one streaming buffer on `device`: at least CACHE_MULTIPLE x its last-level cache."""
    if device.type == "cuda":
        llc = torch.cuda.get_device_properties(device).L2_cache_size
    else:
        llc = cpu_llc_bytes()
    size = max(MIN_STREAM_BYTES, CACHE_MULTIPLE * llc)
    return -(-size // CPU_CHUNK_BYTES) * CPU_CHUNK_BYTES  # whole chunks, so every step is equal


def compute_workload(device: torch.device) -> Workload:
    n = CUDA_MATMUL if device.type == "cuda" else CPU_MATMUL
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    return Workload(step=lambda: torch.mm(a, b, out=out))


def memory_workload(device: torch.device) -> Workload:
    n = stream_bytes(device) // 4
    src = torch.ones(n, device=device)  # filled, so every page is really there
    dst = torch.zeros_like(src)
    # CPU: copy a chunk per step, so a duty-cycle slice can end every ~0.5 ms. CUDA: one launch
    # streams the whole buffer (a fraction of a millisecond on a modern GPU).
    chunk = n if device.type == "cuda" else CPU_CHUNK_BYTES // 4
    pairs = [(dst[i:i + chunk], src[i:i + chunk]) for i in range(0, n, chunk)]
    cycle = itertools.cycle(pairs)

    def step() -> None:
        d, s = next(cycle)
        d.copy_(s)

    return Workload(step=step, bytes_per_step=2 * chunk * 4, steps_per_pass=len(pairs))


@cache
def zoo_model(name: str, device: torch.device) -> StageGraph:
    """A zoo model on `device`, built once per process (building takes 0.1-1 s). Shared by every
    Background that loops over it: forward passes in eval mode change no state."""
    graph = build_model(name)
    graph.model.to(device)  # moves the stages too: they are the model's children
    return graph


def model_workload(name: str, device: torch.device) -> Workload:
    graph = zoo_model(name, device)
    x = graph.example_input().to(device)
    return Workload(step=lambda: graph.run_whole(x))
