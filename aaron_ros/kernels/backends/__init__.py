"""Kernel backends: the ways a stage is compiled into a version and loaded back as a runnable
stand-in `Stage` that runs with the version's resource shape.

A backend writes a version's artifact files (`build`) and turns them into a stand-in (`load`)
whose `.module` runs the stage; a version with parallel branches also exposes one callable per
branch in `.branches`, for the executor to spread over lanes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from aaron_ros.kernels.version import ResourceShape
from aaron_ros.models.stage_graph import Stage

from .eager import EagerBackend
from .inductor import InductorBackend
from .ort import OnnxRuntimeBackend
from .tensorrt import TensorRTBackend


class Backend(Protocol):
    name: str

    def unavailable(self, device: torch.device) -> str | None:
        """Why this backend cannot run on `device` here, or None."""

    def supports(self, stage: Stage, shape: ResourceShape, device: torch.device) -> str | None:
        """Why `shape` is not offered for `stage` on `device`, or None."""

    def build(self, stage: Stage, example: torch.Tensor, shape: ResourceShape, out_dir: Path,
              stem: str) -> list[Path]:
        """Write the version's artifacts into `out_dir` (names start with `stem`); return them."""

    def load(self, stage: Stage, artifacts: list[Path], shape: ResourceShape, device: torch.device) -> Stage:
        """The runnable stand-in of the version (same index and name as `stage`)."""


BACKENDS: dict[str, Backend] = {
    b.name: b for b in (EagerBackend(), OnnxRuntimeBackend(), InductorBackend(), TensorRTBackend())
}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "Backend", "get_backend"]
