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

    `output_kind` says what the raw output means to a user ("classes", "detections", "mask", or
    "raw": passed through);
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


def group_stages(costs_ms: Sequence[float], branch_groups: Sequence[bool], min_ms: float) -> list[list[int]]:
    """Consecutive stages grouped so that each group costs at least `min_ms` where it can, as a
    kernel bag fuses them (each stage a grant must be worth the grant): a group closes once it
    reaches `min_ms`, a branch group stays alone (its branches may run side by side), and what is
    left short at the end joins the group before it."""
    groups: list[list[int]] = []
    open_group: list[int] = []
    cost = 0.0
    for i, (ms, branch) in enumerate(zip(costs_ms, branch_groups, strict=True)):
        if branch:
            groups += [open_group, [i]] if open_group else [[i]]
            open_group, cost = [], 0.0
            continue
        open_group.append(i)
        cost += ms
        if cost >= min_ms:
            groups.append(open_group)
            open_group, cost = [], 0.0
    if open_group:
        if groups and not branch_groups[groups[-1][-1]]:
            groups[-1] += open_group
        else:
            groups.append(open_group)
    return groups


def fuse(graph: StageGraph, groups: Sequence[Sequence[int]]) -> StageGraph:
    """The graph with each group of its consecutive stages made one stage (in order, every stage
    once; a branch group only alone). The stages compute what the model computes, as before."""
    n = len(graph.stages)
    if [i for g in groups for i in g] != list(range(n)) or not all(groups):
        raise ValueError(f"{graph.name}: stage groups {[list(g) for g in groups]} do not cover its "
                         f"{n} stages once, in order")
    stages = []
    for k, group in enumerate(groups):
        parts = [graph.stages[i] for i in group]
        names = [s.name.split("_", 1)[-1] for s in parts]
        if len(parts) == 1:
            s = parts[0]
            stages.append(Stage(k, f"{k:02d}_{names[0]}", s.module, s.branches))
            continue
        if any(s.is_branch_group for s in parts):
            raise ValueError(f"{graph.name}: a branch group is fused only alone, got group {list(group)}")
        module = _chained([s.module for s in parts])
        stages.append(Stage(k, f"{k:02d}_{names[0]}-{names[-1]}", module))
    return StageGraph(graph.name, graph.input_shape, stages, graph.model, graph.output_kind,
                      graph.postprocess, dict(graph.extra))


def _chained(modules: list[nn.Module]) -> nn.Module:
    """Modules run one after another, as one module: by their own kind's `chain` where it has one
    (ONNX parts merge into one ONNX model, which ONNX Runtime versions need), else a Sequential."""
    chain = getattr(type(modules[0]), "chain", None)
    if chain is not None and all(type(m) is type(modules[0]) for m in modules):
        return chain(modules)
    # In eval mode as the model is: an exporter restoring a new container's training mode
    # would switch its batch norms to training, which changes their statistics.
    return nn.Sequential(*modules).eval()


def wrap(model: nn.Module, name: str, input_shape: tuple[int, int, int], **kwargs) -> StageGraph:
    """Turn any module into a stage graph.

    `nn.Sequential` children become stages (a `Branches` child becomes a branch group);
    any other module is one stage. The model is put in eval mode with autograd off: stages are
    also called outside inference mode (by schedulers, by compilers tracing them).
    """
    try:
        model.eval()
    except NotImplementedError:  # a torch.export module: its mode was fixed when it was exported
        pass
    for p in model.parameters():  # not model.requires_grad_: a TorchScript module refuses it
        p.requires_grad_(False)
    if isinstance(model, nn.Sequential):
        children = list(model.named_children())
    else:
        children = [(type(model).__name__, model)]
    stages = []
    for i, (child_name, child) in enumerate(children):
        branches = tuple(child.branches) if isinstance(child, Branches) else ()
        stages.append(Stage(index=i, name=f"{i:02d}_{child_name}", module=child, branches=branches))
    return StageGraph(name=name, input_shape=tuple(input_shape), stages=stages, model=model, **kwargs)
