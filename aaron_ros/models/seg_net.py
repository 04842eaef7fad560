"""A small skip-free encoder-decoder for semantic segmentation (19 Cityscapes-like classes).

Input 3x240x320. The encoder reaches stride 16 (15x20) with a strided stem and MobileNetV2-style
inverted-residual blocks; the decoder doubles the resolution four times with bilinear upsampling
plus a conv, ending in per-pixel class logits at the input resolution.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .layers import ConvBNAct, InvertedResidual

INPUT_SHAPE = (3, 240, 320)
NUM_CLASSES = 19
EXPANSION = 4


def _block(in_channels: int, out_channels: int, stride: int) -> InvertedResidual:
    return InvertedResidual(in_channels, in_channels * EXPANSION, out_channels, 3, stride, nn.ReLU, use_se=False)


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        ConvBNAct(in_channels, out_channels, 3),
    )


def seg_net(num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """Stages: stem, 6 encoder blocks, 3 upsampling decoder stages, classifier: 11 in all."""
    return nn.Sequential(
        OrderedDict(
            stem=ConvBNAct(3, 16, 3, stride=2),  # 1/2
            enc1=_block(16, 24, stride=2),  # 1/4
            enc2=_block(24, 32, stride=2),  # 1/8
            enc3=_block(32, 32, stride=1),
            enc4=_block(32, 64, stride=2),  # 1/16
            enc5=_block(64, 64, stride=1),
            enc6=_block(64, 96, stride=1),
            dec1=_up(96, 64),  # 1/8
            dec2=_up(64, 32),  # 1/4
            dec3=_up(32, 32),  # 1/2
            classifier=nn.Sequential(
                nn.Conv2d(32, num_classes, 1),
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),  # full resolution
            ),
        )
    )
