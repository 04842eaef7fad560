"""MobileNetV3-Small (Howard et al., 2019), 224x224 input, following Table 2 of the paper."""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from torch import nn

from .layers import ClassifierHead, ConvBNAct, InvertedResidual

INPUT_SHAPE = (3, 224, 224)


class Bneck(NamedTuple):
    kernel: int
    expanded: int
    out: int
    se: bool
    hardswish: bool
    stride: int


# One row per bottleneck of the paper's table (input 112x112x16 after the stem).
SMALL_BNECKS = (
    Bneck(3, 16, 16, True, False, 2),
    Bneck(3, 72, 24, False, False, 2),
    Bneck(3, 88, 24, False, False, 1),
    Bneck(5, 96, 40, True, True, 2),
    Bneck(5, 240, 40, True, True, 1),
    Bneck(5, 240, 40, True, True, 1),
    Bneck(5, 120, 48, True, True, 1),
    Bneck(5, 144, 48, True, True, 1),
    Bneck(5, 288, 96, True, True, 2),
    Bneck(5, 576, 96, True, True, 1),
    Bneck(5, 576, 96, True, True, 1),
)


def mobilenet_v3_small(num_classes: int = 1000) -> nn.Sequential:
    """Stages: stem, one per bottleneck (11), final 1x1 conv, classifier: 14 in all."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(stem=ConvBNAct(3, 16, 3, stride=2, act=nn.Hardswish))
    channels = 16
    for i, b in enumerate(SMALL_BNECKS, start=1):
        act = nn.Hardswish if b.hardswish else nn.ReLU
        layers[f"bneck{i}"] = InvertedResidual(channels, b.expanded, b.out, b.kernel, b.stride, act, b.se)
        channels = b.out
    # The paper's table marks SE on this conv, but the reference (TF-slim) model and its published
    # 2.5M parameters have none there; we follow the reference.
    layers["conv_last"] = ConvBNAct(channels, 576, 1, act=nn.Hardswish)
    # The paper's two "1x1 conv, NBN" layers after pooling are linear layers on a 1x1 map.
    layers["classifier"] = ClassifierHead(576, num_classes, hidden=1024, act=nn.Hardswish)
    return nn.Sequential(layers)
