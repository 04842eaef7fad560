"""Inception-v3 (Szegedy et al., 2016), 299x299 input, without the auxiliary head.

Every mixed block is a `Branches`, so `wrap` makes it a branch-group stage whose branches a
scheduler may run side by side. Block and branch layout follow the reference implementation
(Mixed_5b ... Mixed_7c); `conv` is its BasicConv2d (bias-free conv, BN eps 1e-3, ReLU).
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial

from torch import nn

from .layers import ClassifierHead, ConvBNAct
from .stage_graph import Branches

INPUT_SHAPE = (3, 299, 299)

conv = partial(ConvBNAct, bn_eps=1e-3)


def _pool_branch(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), conv(in_channels, out_channels, 1))


def _split_1x3_3x1(in_channels: int, out_channels: int) -> Branches:
    """InceptionE's fan-out of one tensor into a 1x3 and a 3x1 conv, concatenated."""
    return Branches(conv(in_channels, out_channels, (1, 3)), conv(in_channels, out_channels, (3, 1)))


def inception_a(in_channels: int, pool_features: int) -> Branches:
    """35x35 block: 1x1 | 5x5 | double 3x3 | pool -> 224 + pool_features channels."""
    return Branches(
        conv(in_channels, 64, 1),
        nn.Sequential(conv(in_channels, 48, 1), conv(48, 64, 5)),
        nn.Sequential(conv(in_channels, 64, 1), conv(64, 96, 3), conv(96, 96, 3)),
        _pool_branch(in_channels, pool_features),
    )


def inception_b(in_channels: int) -> Branches:
    """35 -> 17 grid reduction: strided 3x3 | double 3x3 | max pool."""
    return Branches(
        conv(in_channels, 384, 3, stride=2, padding=0),
        nn.Sequential(conv(in_channels, 64, 1), conv(64, 96, 3), conv(96, 96, 3, stride=2, padding=0)),
        nn.MaxPool2d(3, stride=2),
    )


def inception_c(in_channels: int, c7: int) -> Branches:
    """17x17 block with factorised 7x7 convs: 1x1 | 7x7 | double 7x7 | pool -> 768 channels."""
    return Branches(
        conv(in_channels, 192, 1),
        nn.Sequential(conv(in_channels, c7, 1), conv(c7, c7, (1, 7)), conv(c7, 192, (7, 1))),
        nn.Sequential(
            conv(in_channels, c7, 1),
            conv(c7, c7, (7, 1)),
            conv(c7, c7, (1, 7)),
            conv(c7, c7, (7, 1)),
            conv(c7, 192, (1, 7)),
        ),
        _pool_branch(in_channels, 192),
    )


def inception_d(in_channels: int) -> Branches:
    """17 -> 8 grid reduction: 1x1 + strided 3x3 | 1x1 + 7x7 + strided 3x3 | max pool."""
    return Branches(
        nn.Sequential(conv(in_channels, 192, 1), conv(192, 320, 3, stride=2, padding=0)),
        nn.Sequential(
            conv(in_channels, 192, 1),
            conv(192, 192, (1, 7)),
            conv(192, 192, (7, 1)),
            conv(192, 192, 3, stride=2, padding=0),
        ),
        nn.MaxPool2d(3, stride=2),
    )


def inception_e(in_channels: int) -> Branches:
    """8x8 block with expanded filter banks: 1x1 | 3x3 split | double 3x3 split | pool -> 2048."""
    return Branches(
        conv(in_channels, 320, 1),
        nn.Sequential(conv(in_channels, 384, 1), _split_1x3_3x1(384, 384)),
        nn.Sequential(conv(in_channels, 448, 1), conv(448, 384, 3), _split_1x3_3x1(384, 384)),
        _pool_branch(in_channels, 192),
    )


def inception_v3(num_classes: int = 1000) -> nn.Sequential:
    """Stages: two stem halves, 11 mixed blocks (branch groups), classifier: 14 in all."""
    return nn.Sequential(
        OrderedDict(
            stem1=nn.Sequential(
                conv(3, 32, 3, stride=2, padding=0),
                conv(32, 32, 3, padding=0),
                conv(32, 64, 3),
                nn.MaxPool2d(3, stride=2),
            ),
            stem2=nn.Sequential(conv(64, 80, 1), conv(80, 192, 3, padding=0), nn.MaxPool2d(3, stride=2)),
            mixed_5b=inception_a(192, pool_features=32),
            mixed_5c=inception_a(256, pool_features=64),
            mixed_5d=inception_a(288, pool_features=64),
            mixed_6a=inception_b(288),
            mixed_6b=inception_c(768, c7=128),
            mixed_6c=inception_c(768, c7=160),
            mixed_6d=inception_c(768, c7=160),
            mixed_6e=inception_c(768, c7=192),
            mixed_7a=inception_d(768),
            mixed_7b=inception_e(1280),
            mixed_7c=inception_e(2048),
            classifier=ClassifierHead(2048, num_classes),
        )
    )
