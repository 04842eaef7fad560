"""Models as stage graphs: an ordered list of stages the coordinator can grant one at a time.

A stage is either one module, or a group of parallel branches whose outputs are concatenated
along the channel dimension (Inception's mixed blocks, as IOS schedules them). Running the
stages in order computes exactly what the whole model computes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


class Branches(nn.Module):
    """Parallel branches over one input, outputs concatenated on dim 1.

    Inside a model it is an ordinary module; `wrap` turns it into a branch-group stage, so a
    scheduler may run the branches side by side on different lanes or one after another.
    """

    def __init__(self, *branches: nn.Module):
        super().__init__()
        if not branches:
            raise ValueError("Branches needs at least one branch")
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


@dataclass(frozen=True)
class Stage:
    """One schedulable unit: a module, or parallel branches concatenated on dim 1."""

    index: int
    name: str
    module: nn.Module
    branches: tuple[nn.Module, ...] = ()

    @property
    def is_branch_group(self) -> bool:
        return bool(self.branches)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    @staticmethod
    def join(parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """Combine branch outputs computed separately (e.g. on different lanes)."""
        return torch.cat(list(parts), dim=1)


@dataclass
class StageGraph:
    """A model ready for stage-level scheduling.

    `output_kind` says what the raw output means to a user ("classes", "detections", "mask");
    `postprocess` turns the last stage's raw tensor into that (e.g. box decoding + NMS) and is
    not a schedulable stage.
    """

    name: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    stages: list[Stage]
    model: nn.Module
    output_kind: str = "classes"
    postprocess: Callable[[torch.Tensor], object] | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.stages)

    def example_input(self, batch: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn((batch, *self.input_shape), generator=generator)

    @torch.inference_mode()
    def run_stages(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    @torch.inference_mode()
    def run_whole(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def wrap(model: nn.Module, name: str, input_shape: tuple[int, int, int], **kwargs) -> StageGraph:
    """Turn any module into a stage graph.

    `nn.Sequential` children become stages (a `Branches` child becomes a branch group);
    any other module is one stage. The model is put in eval mode.
    """
    model.eval()
    if isinstance(model, nn.Sequential):
        children = list(model.named_children())
    else:
        children = [(type(model).__name__, model)]
    stages = []
    for i, (child_name, child) in enumerate(children):
        branches = tuple(child.branches) if isinstance(child, Branches) else ()
        stages.append(Stage(index=i, name=f"{i:02d}_{child_name}", module=child, branches=branches))
    return StageGraph(name=name, input_shape=tuple(input_shape), stages=stages, model=model, **kwargs)
