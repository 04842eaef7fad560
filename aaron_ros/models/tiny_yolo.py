"""Tiny YOLO-v2 style detector (VOC: 20 classes, 5 anchors), 320x320 input, 10x10 output grid."""
from __future__ import annotations

from collections import OrderedDict
from functools import partial

from torch import nn

from .detection import YoloDecoder
from .layers import ConvBNAct

INPUT_SHAPE = (3, 320, 320)
NUM_CLASSES = 20
# tiny-yolo-voc anchors (w, h) in grid cells.
ANCHORS = ((1.08, 1.19), (3.42, 4.41), (6.63, 11.38), (9.42, 5.11), (16.62, 10.52))

conv = partial(ConvBNAct, act=partial(nn.LeakyReLU, 0.1))


def tiny_yolo(num_classes: int = NUM_CLASSES, num_anchors: int = len(ANCHORS)) -> nn.Sequential:
    """Stages: six conv+pool stages (stride 32), two 3x3 convs, the 1x1 head: 9 in all."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = 3
    for i, width in enumerate((16, 32, 64, 128, 256), start=1):
        layers[f"conv{i}"] = nn.Sequential(conv(channels, width, 3), nn.MaxPool2d(2, stride=2))
        channels = width
    # Darknet's size-2 stride-1 max pool keeps the grid size by padding right/bottom; replicating
    # the edge gives the same maxima as darknet's -inf padding.
    layers["conv6"] = nn.Sequential(
        conv(channels, 512, 3), nn.ReplicationPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, stride=1)
    )
    layers["conv7"] = conv(512, 1024, 3)
    layers["conv8"] = conv(1024, 512, 3)
    layers["head"] = nn.Conv2d(512, num_anchors * (5 + num_classes), 1)
    return nn.Sequential(layers)


def decoder() -> YoloDecoder:
    return YoloDecoder(anchors=ANCHORS, num_classes=NUM_CLASSES, input_size=INPUT_SHAPE[1:])
