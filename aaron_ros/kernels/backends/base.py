"""What every backend shares: which pieces a version compiles (the stage whole, or each branch),
the thread budget applied on every call, and the stand-in `Stage` the runtime schedules."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from copy import deepcopy
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from aaron_ros.kernels.version import ResourceShape
from aaron_ros.models.stage_graph import Stage

Fn = Callable[[torch.Tensor], torch.Tensor]


def is_split(shape: ResourceShape) -> bool:
    return shape.branches == "parallel"


def units(stage: Stage, shape: ResourceShape) -> list[nn.Module]:
    """The modules a version runs as separate callables: each branch when split, else the stage."""
    return list(stage.branches) if is_split(shape) else [stage.module]


def unit_threads(shape: ResourceShape) -> int:
    # Split branches run side by side on lanes of one thread each (the IOS choice).
    return 1 if is_split(shape) else shape.threads


def resolve_device(device: torch.device | str) -> torch.device:
    """`cuda` without an index means the current CUDA device; parameters always carry an index."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def device_unavailable(device: torch.device) -> str | None:
    if device.type == "cuda":
        return None if torch.cuda.is_available() else "no CUDA device is available"
    if device.type != "cpu":
        return f"device type '{device.type}' is not supported"
    return None


def on_device(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` on `device`; a copy when it has to move, so the model keeps its own weights."""
    device = resolve_device(device)
    if all(t.device == device for t in itertools.chain(module.parameters(), module.buffers())):
        return module
    return deepcopy(module).to(device)


class ThreadBudget:
    """Calls `fn` under inference mode with `threads` intra-op threads.

    torch's thread count holds per Python thread, so it is set on every call: any lane may call.
    """

    def __init__(self, fn: Fn, threads: int):
        self.fn = fn
        self.threads = threads

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Reading first runs torch's lazy per-thread init; otherwise a thread's first parallel op
        # would replace this setting with whatever count some other thread set last.
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            return self.fn(x)


class JoinedBranches:
    """A split version called as a whole (no branch lanes given): its branches in turn, joined."""

    def __init__(self, branches: Sequence[Fn]):
        self.branches = tuple(branches)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return Stage.join([b(x) for b in self.branches])


def stand_in(stage: Stage, shape: ResourceShape, fns: Sequence[Fn]) -> Stage:
    """The runnable form of a version: split versions expose their branches to the executor."""
    if is_split(shape):
        return Stage(stage.index, stage.name, module=JoinedBranches(fns), branches=tuple(fns))
    (fn,) = fns
    return Stage(stage.index, stage.name, module=fn)


class UnitBackend:
    """A backend compiling each unit (see `units`) into one file `{stem}[.b{i}]{suffix}`.

    Subclasses give `build_unit` and `load_unit`; splitting, checks and the stand-in are here.
    """

    name: ClassVar[str]
    suffix: ClassVar[str] = ""
    splits_branches: ClassVar[bool] = True

    def unavailable(self, device: torch.device) -> str | None:
        return device_unavailable(device)

    def supports(self, stage: Stage, shape: ResourceShape, device: torch.device) -> str | None:
        if shape.sms is not None and device.type != "cuda":
            return f"an SM budget needs a CUDA device, not {device}"
        return self.shape_reason(stage, shape)

    def shape_reason(self, stage: Stage, shape: ResourceShape) -> str | None:
        if not is_split(shape):
            return None
        if not stage.is_branch_group:
            return f"stage {stage.name} is not a branch group: it has no branches to run in parallel"
        if not self.splits_branches:
            return f"{self.name} does not run branches as separate callables"
        return None

    def refuse_unsupported(self, stage: Stage, shape: ResourceShape) -> None:
        reason = self.shape_reason(stage, shape)
        if reason:
            raise ValueError(f"{self.name} cannot build {shape.key} of {stage.name}: {reason}")

    def build(self, stage: Stage, example: torch.Tensor, shape: ResourceShape, out_dir: Path,
              stem: str) -> list[Path]:
        self.refuse_unsupported(stage, shape)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        mods = units(stage, shape)
        tags = [f".b{i}" for i in range(len(mods))] if is_split(shape) else [""]
        return [self.build_unit(m, example, unit_threads(shape), out_dir / f"{stem}{tag}{self.suffix}")
                for m, tag in zip(mods, tags)]

    def load(self, stage: Stage, artifacts: list[Path], shape: ResourceShape, device: torch.device) -> Stage:
        mods = units(stage, shape)
        if len(artifacts) != len(mods):
            raise ValueError(f"{self.name} {shape.key} of {stage.name} needs {len(mods)} artifact(s), "
                             f"got {len(artifacts)}")
        device = resolve_device(device)
        return stand_in(stage, shape, [self.load_unit(m, Path(p), unit_threads(shape), device)
                                       for m, p in zip(mods, artifacts)])

    def build_unit(self, module: nn.Module, example: torch.Tensor, threads: int, path: Path) -> Path:
        """Write the artifact of one unit (it may pick another name starting with the same stem)."""
        raise NotImplementedError

    def load_unit(self, module: nn.Module, path: Path, threads: int, device: torch.device) -> Fn:
        raise NotImplementedError
