"""Deterministic weight initialisation and loading of user weights."""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn


class WeightsError(ValueError):
    """Weights could not be loaded into a model (bad file, or keys/shapes that do not fit)."""


def _owns_tensors(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


@torch.no_grad()
def init_weights(model: nn.Module, seed: int) -> nn.Module:
    """Initialise every parameter and buffer of `model` from `seed` alone.

    A local generator keeps the global RNG untouched and makes the result independent of it:
    the same seed gives bit-identical weights. Also fills models built on the meta device.
    Convs: Kaiming normal, zero bias; BN: gamma 1, beta 0, fresh running statistics; Linear:
    N(0, 0.01), zero bias. Kaiming uses fan-in so activations keep roughly unit scale through
    depth when these random weights run for real (fan-out shrinks a depthwise conv by
    sqrt(channels) and drives MobileNetV3's activations towards zero).
    """
    generator = torch.Generator().manual_seed(seed)
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()  # gamma 1, beta 0, running mean 0 / var 1
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu", generator=generator)
            else:
                nn.init.normal_(module.weight, 0.0, 0.01, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif _owns_tensors(module):
            # Leaving its tensors as they are would make weights seed-independent (or garbage).
            raise TypeError(f"init_weights does not know how to initialise {name!r} ({type(module).__name__})")
    return model


def _read_state_dict(path: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {os.fspath(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated, foreign or unsafe files
        raise WeightsError(f"cannot read weights file {os.fspath(path)!r}: {exc}") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{os.fspath(path)!r} does not hold a state dict (name -> tensor)")
    return state


def load_weights(model: nn.Module, weights: str | os.PathLike | Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a state dict (or a file saved with `torch.save(model.state_dict(), path)`) into `model`.

    All mismatches are reported at once, so one error names every missing key, unexpected key
    and shape mismatch.
    """
    state = weights if isinstance(weights, Mapping) else _read_state_dict(weights)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: expected {tuple(expected[k].shape)}, got {tuple(state[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    found = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatch": mismatched}
    problems = [f"{label}: {', '.join(items)}" for label, items in found.items() if items]
    if problems:
        raise WeightsError(f"weights do not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state)
    return model
