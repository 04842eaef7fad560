"""YOLO-v2 style box decoding and class-aware non-maximum suppression.

Both run as compiled host kernels (`aaron_ros.common.native`): numpy's two dozen small
operations on a few thousand values cost 0.3-0.8 ms of a cold cache right after the model ran.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aaron_ros.common import native

from .postprocess import single_image


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2 in input pixels
    scores: np.ndarray  # (N,) float32, best score first
    classes: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return self.scores.size


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
                max_kept: int | None = None) -> np.ndarray:
    """Greedy NMS within each class (a box goes when its IoU with a better box of its class is
    above `iou_threshold`); indices of the kept boxes (at most `max_kept`), highest score first,
    ties in input order. Boxes without area are never kept."""
    return native.nms(boxes, scores, classes, iou_threshold, len(scores) if max_kept is None else max_kept)


@dataclass(frozen=True)
class YoloDecoder:
    """Raw (A*(5+C), S_h, S_w) head output -> `Detections`.

    Per anchor the channels are tx, ty, tw, th, objectness, then C class logits. A box's score
    is objectness times its best class probability.
    """

    anchors: tuple[tuple[float, float], ...]  # (w, h) in grid cells
    num_classes: int
    input_size: tuple[int, int]  # (H, W) in pixels
    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 100

    def __call__(self, raw: torch.Tensor) -> Detections:
        raw = single_image(raw, 3).detach().cpu().float().numpy()
        num_anchors, per_anchor = len(self.anchors), 5 + self.num_classes
        if raw.shape[0] != num_anchors * per_anchor:
            raise ValueError(
                f"expected {num_anchors}*(5+{self.num_classes}) = {num_anchors * per_anchor} channels, "
                f"got {raw.shape[0]}"
            )
        boxes, scores, classes = native.yolo_candidates(raw, self.anchors, self.input_size, self.score_threshold)
        kept = batched_nms(boxes, scores, classes, self.iou_threshold, self.max_detections)
        return Detections(boxes=boxes[kept], scores=scores[kept], classes=classes[kept])
