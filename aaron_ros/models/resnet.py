"""ResNet-18 (He et al., 2016), 224x224 input."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .layers import ClassifierHead, ConvBNAct

INPUT_SHAPE = (3, 224, 224)


class BasicBlock(nn.Module):
    """Two 3x3 convs plus identity; a strided 1x1 projection where the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvBNAct(in_channels, out_channels, 3, stride=stride),
            ConvBNAct(out_channels, out_channels, 3, act=None),
        )
        self.shortcut = (
            ConvBNAct(in_channels, out_channels, 1, stride=stride, act=None)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def resnet18(num_classes: int = 1000) -> nn.Sequential:
    """Stages: stem (7x7 conv + max pool), one per basic block (8), classifier: 10 in all."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        stem=nn.Sequential(ConvBNAct(3, 64, 7, stride=2), nn.MaxPool2d(3, stride=2, padding=1))
    )
    channels = 64
    for group, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if block == 0 and group > 1 else 1
            layers[f"layer{group}_{block}"] = BasicBlock(channels, width, stride)
            channels = width
    layers["classifier"] = ClassifierHead(channels, num_classes)
    return nn.Sequential(layers)
