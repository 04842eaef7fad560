"""The equivalence check a version passes before it enters a bag: its output on fresh random
inputs must match the eager float32 reference stage."""
from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import torch

from aaron_ros.models.stage_graph import Stage
from aaron_ros.runtime.lanes import exact_float32


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    max_rel_err: float  # worst over trials; inf where no error could be measured
    reason: str | None = None


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||, in float64 (`b` is the reference); 0 when both are zero."""
    a64, b64 = a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)
    diff = torch.linalg.vector_norm(a64 - b64).item()
    ref = torch.linalg.vector_norm(b64).item()
    if ref == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / ref


def _paths(candidate: Stage) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
    """The ways the runtime may call a version: whole, and (split versions) branch by branch."""
    paths = [("module", candidate.module)]
    if candidate.branches:
        paths.append(("branches", lambda x: Stage.join([b(x) for b in candidate.branches])))
    return paths


def _mismatch(out: object, ref: torch.Tensor) -> str | None:
    if not isinstance(out, torch.Tensor):
        return f"returned {type(out).__name__}, not a tensor"
    if out.shape != ref.shape:
        return f"output shape {tuple(out.shape)} differs from the reference's {tuple(ref.shape)}"
    if not torch.isfinite(out).all():
        return "output has NaN or inf values"
    return None


def check_version(candidate: Stage, reference: Stage, input_shape: tuple, trials: int = 3,
                  rtol: float = 1e-4, device: torch.device | str = "cpu") -> CheckResult:
    """Run `candidate` (on `device`) and the eager `reference` (float32, CPU) on `trials` fresh
    random inputs; fail on the first error above `rtol`, bad output, or exception."""
    device = torch.device(device)
    if device.type == "cuda":
        # As on a CUDA lane. A bag loaded before any lane was made (the core bench's) once left
        # every CUDA version out, at 1e-3 off under TF32.
        exact_float32()
    # A new seed each call: a version cannot pass by matching on remembered inputs. Reported on
    # failure, so the failing inputs can be made again.
    seed = secrets.randbits(63)
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for trial in range(trials):
        x = torch.randn(tuple(input_shape), generator=gen)
        with torch.inference_mode():
            ref = reference(x.clone())  # clones: an in-place first op must not change the other's input
        if not torch.isfinite(ref).all():
            return CheckResult(False, math.inf, f"the reference output has NaN or inf values (seed {seed})")
        for label, run in _paths(candidate):
            where = f"{label}, trial {trial}, seed {seed}"
            try:
                with torch.inference_mode():
                    out = run(x.clone().to(device))
            except Exception as exc:
                return CheckResult(False, math.inf, f"raised {type(exc).__name__}: {exc} ({where})")
            reason = _mismatch(out, ref)
            if reason:
                return CheckResult(False, math.inf, f"{reason} ({where})")
            err = relative_error(out, ref)
            worst = max(worst, err)
            if err > rtol:
                return CheckResult(False, worst, f"relative error {err:.3g} above rtol {rtol:g} ({where})")
    return CheckResult(True, worst)
