"""Eager: the stage's own modules, run with the version's thread budget. No artifact."""
from __future__ import annotations

from pathlib import Path

import torch

from aaron_ros.kernels.version import ResourceShape
from aaron_ros.models.stage_graph import Stage

from .base import ThreadBudget, UnitBackend, on_device, stand_in, unit_threads, units


class EagerBackend(UnitBackend):
    name = "eager"

    def build(self, stage: Stage, example: torch.Tensor, shape: ResourceShape, out_dir: Path,
              stem: str) -> list[Path]:
        self.refuse_unsupported(stage, shape)
        return []

    def load(self, stage: Stage, artifacts: list[Path], shape: ResourceShape, device: torch.device) -> Stage:
        fns = [ThreadBudget(on_device(m, device), unit_threads(shape)) for m in units(stage, shape)]
        return stand_in(stage, shape, fns)
