"""Cost estimates: FLOPs of Conv2d and Linear layers (2 x multiply-accumulates) and parameters."""
from __future__ import annotations

import torch
from torch import nn


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass on `example`, counting only Conv2d and Linear (the bulk of it).

    Measured with forward hooks, so branches, skips and reshapes are followed exactly as run.
    """
    macs = 0

    def conv_hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        kh, kw = module.kernel_size
        macs += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        macs += output.numel() * module.in_features

    handles = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return 2 * macs


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
