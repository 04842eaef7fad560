"""ShuffleNetV2 x1.0 (Ma et al., 2018), 224x224 input."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .layers import ClassifierHead, ConvBNAct
from .stage_graph import Branches

INPUT_SHAPE = (3, 224, 224)
STAGE_CHANNELS = (116, 232, 464)
STAGE_UNITS = (4, 8, 4)
UNITS_PER_STAGE_GRAPH_STAGE = 2  # 16 units -> 8 schedulable stages of similar cost


class ChannelShuffle(nn.Module):
    """Interleave channel groups so information crosses the two halves of the next unit."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _main_branch(in_channels: int, channels: int, stride: int) -> nn.Sequential:
    """1x1 conv, depthwise 3x3 (linear), 1x1 conv."""
    return nn.Sequential(
        ConvBNAct(in_channels, channels, 1),
        ConvBNAct(channels, channels, 3, stride=stride, groups=channels, act=None),
        ConvBNAct(channels, channels, 1),
    )


class ShuffleUnit(nn.Module):
    """Basic unit: half the channels pass through, the other half go through the main branch."""

    def __init__(self, channels: int):
        super().__init__()
        self.branch = _main_branch(channels // 2, channels // 2, stride=1)
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, processed = x.chunk(2, dim=1)
        return self.shuffle(torch.cat((kept, self.branch(processed)), dim=1))


def downsample_unit(in_channels: int, out_channels: int) -> nn.Sequential:
    """Spatial down-sampling unit: both branches see the whole input, then shuffle."""
    half = out_channels // 2
    shortcut = nn.Sequential(
        ConvBNAct(in_channels, in_channels, 3, stride=2, groups=in_channels, act=None),
        ConvBNAct(in_channels, half, 1),
    )
    return nn.Sequential(Branches(shortcut, _main_branch(in_channels, half, stride=2)), ChannelShuffle(2))


def shufflenet_v2_x1_0(num_classes: int = 1000) -> nn.Sequential:
    """Stages: stem, 8 pairs of units, conv5, classifier: 11 in all."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        stem=nn.Sequential(ConvBNAct(3, 24, 3, stride=2), nn.MaxPool2d(3, stride=2, padding=1))
    )
    channels = 24
    for s, (width, repeats) in enumerate(zip(STAGE_CHANNELS, STAGE_UNITS), start=2):
        units = [downsample_unit(channels, width)] + [ShuffleUnit(width) for _ in range(repeats - 1)]
        channels = width
        for start in range(0, repeats, UNITS_PER_STAGE_GRAPH_STAGE):
            end = start + UNITS_PER_STAGE_GRAPH_STAGE
            layers[f"stage{s}_{start}_{end - 1}"] = nn.Sequential(*units[start:end])
    layers["conv5"] = ConvBNAct(channels, 1024, 1)
    layers["classifier"] = ClassifierHead(1024, num_classes)
    return nn.Sequential(layers)
