"""Deterministic weight initialisation and loading of user weights."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch
from torch import nn

log = logging.getLogger(__name__)
SHOWN = 5  # names shown per kind of mismatch: a whole list of a large model buries the point


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


def _by_position(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> bool:
    """The same tensors in the same order under other names: as many, and every shape alike."""
    return len(state) == len(expected) and all(
        a.shape == b.shape for a, b in zip(state.values(), expected.values()))


def _listed(label: str, items: list[str]) -> str:
    more = f", ... {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"{len(items)} {label}: {', '.join(items[:SHOWN])}{more}"


def load_weights(model: nn.Module, weights: str | os.PathLike | Mapping[str, torch.Tensor],
                 name: str | None = None) -> nn.Module:
    """Load a state dict (or a file saved with `torch.save(model.state_dict(), path)`) into `model`
    (`name`: what errors call it).

    Keys are matched by name. A state dict whose names all differ but whose tensors have the
    model's shapes in the model's order (torchvision's resnet18 for the zoo's: the same 122
    tensors, named after torchvision's modules) is loaded by position, and the log says so.
    Otherwise a mismatch names the model and counts the missing keys, unexpected keys and shape
    mismatches, showing the first few of each.
    """
    state = weights if isinstance(weights, Mapping) else _read_state_dict(weights)
    expected = model.state_dict()
    what = name or type(model).__name__
    if state and not set(state) & set(expected) and _by_position(state, expected):
        log.info("%s: the weights' %d tensors have other names but the model's shapes in its order: loaded by "
                 "position (%s -> %s, ...)", what, len(state), next(iter(state)), next(iter(expected)))
        state = dict(zip(expected, state.values()))
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: expected {tuple(expected[k].shape)}, got {tuple(state[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    found = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches": mismatched}
    problems = [_listed(label, items) for label, items in found.items() if items]
    if problems:
        raise WeightsError(f"weights do not fit {what} ({len(expected)} tensors; the weights have {len(state)}): "
                           + "; ".join(problems))
    model.load_state_dict(state)
    return model
