"""Building blocks shared by the zoo architectures.

The zoo is inference-only (models stay in eval mode), so classifier dropout is left out:
in eval it is the identity and would only add a no-op module to a stage.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Activation = Callable[[], nn.Module]


def same_padding(kernel_size: int | tuple[int, int]) -> int | tuple[int, int]:
    """Padding that keeps the spatial size at stride 1 (odd kernels)."""
    if isinstance(kernel_size, int):
        return (kernel_size - 1) // 2
    return tuple((k - 1) // 2 for k in kernel_size)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never dropping more than 10% (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """Bias-free conv, batch norm, optional activation (`act=None` for a linear projection)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        act: Activation | None = nn.ReLU,
        bn_eps: float = 1e-5,
    ):
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=same_padding(kernel_size) if padding is None else padding,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels, eps=bn_eps),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel gating from globally pooled features (MobileNetV3 flavour: ReLU, hard sigmoid)."""

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, squeeze_channels, 1),
            nn.ReLU(),
            nn.Conv2d(squeeze_channels, channels, 1),
            nn.Hardsigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 bottleneck: 1x1 expand, depthwise kxk, optional SE, linear 1x1 project.

    The expansion is skipped when it would not widen the input, and the residual is used only
    where input and output shapes agree.
    """

    def __init__(
        self,
        in_channels: int,
        expanded: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        act: Activation,
        use_se: bool,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvBNAct(in_channels, expanded, 1, act=act))
        layers.append(ConvBNAct(expanded, expanded, kernel_size, stride=stride, groups=expanded, act=act))
        if use_se:
            layers.append(SqueezeExcite(expanded, make_divisible(expanded / 4)))
        layers.append(ConvBNAct(expanded, out_channels, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.use_residual else out


class ClassifierHead(nn.Sequential):
    """Global average pool, flatten, optional hidden linear layer, linear classifier."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int | None = None,
        act: Activation = nn.ReLU,
    ):
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if hidden is not None:
            layers += [nn.Linear(in_features, hidden), act()]
            in_features = hidden
        layers.append(nn.Linear(in_features, num_classes))
        super().__init__(*layers)
