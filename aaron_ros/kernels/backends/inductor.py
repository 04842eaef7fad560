"""Inductor: each stage compiled ahead of time into an AOTInductor package (.pt2).

Its C++ kernels bake the thread count in (one thread: no OpenMP at all), so a version is compiled
under its budget, and run under it too (extern kernels such as convolutions read it per call).
Where packaging fails, a marker file records why, and the stage is `torch.compile`d at load time.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

import torch
from torch import nn

from .base import Fn, ThreadBudget, UnitBackend, device_unavailable, on_device

log = logging.getLogger(__name__)

# Artifact of a version compiled at load time instead: `{stem}.compile.json`.
COMPILE_MARKER = ".compile.json"


@contextmanager
def thread_count(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def is_compile_marker(path: Path) -> bool:
    return path.name.endswith(COMPILE_MARKER)


class InductorBackend(UnitBackend):
    name = "inductor"
    suffix = ".pt2"
    splits_branches = False

    def unavailable(self, device: torch.device) -> str | None:
        reason = device_unavailable(device)
        if reason:
            return reason
        if device.type == "cuda":
            return None if find_spec("triton") else "inductor needs triton for CUDA kernels"
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except Exception as exc:
            return f"inductor needs a C++ compiler: {exc}"
        return None

    def build_unit(self, module: nn.Module, example: torch.Tensor, threads: int, path: Path) -> Path:
        try:
            with thread_count(threads):
                program = torch.export.export(on_device(module, example.device), (example,))
                torch._inductor.aoti_compile_and_package(program, package_path=str(path))
            return path
        except Exception as exc:
            log.warning("AOTInductor packaging of %s failed (%s); it will be compiled at load time",
                        path.name, exc)
            marker = path.with_suffix(COMPILE_MARKER)
            reason = f"{type(exc).__name__}: {exc}"
            marker.write_text(json.dumps({"fallback": "torch.compile", "reason": reason}))
            return marker

    def load_unit(self, module: nn.Module, path: Path, threads: int, device: torch.device) -> Fn:
        if is_compile_marker(path):
            # Compiled on the first call, inside the thread budget: dynamo guards on the thread
            # count, so each budget gets its own kernels.
            fn = torch.compile(on_device(module, device), dynamic=False)
        else:
            index = device.index if device.type == "cuda" else -1
            fn = torch._inductor.aoti_load_package(str(path), device_index=index)
        return ThreadBudget(fn, threads)
