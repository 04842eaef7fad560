"""YOLO-v2 style box decoding and class-aware non-maximum suppression.

In numpy and OpenCV: the head's output is small (a few thousand values), and per operation numpy
costs a microsecond where torch costs several.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

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
    order = np.argsort(-scores, kind="stable")
    sizes = boxes[order, 2:] - boxes[order, :2]
    has_area = (sizes > 0).all(axis=1)
    order, sizes = order[has_area], sizes[has_area]
    # OpenCV's NMS (C++, 30x faster than a numpy loop at 300 boxes) is given ranks, not scores,
    # so that equal scores keep the order above.
    rects = np.concatenate((boxes[order, :2], sizes), axis=1).astype(np.float64)
    ranks = np.arange(order.size, 0, -1, dtype=np.float32)
    kept = cv2.dnn.NMSBoxesBatched(rects, ranks, classes[order].astype(np.int32), 0.0, iou_threshold)
    return order[np.asarray(kept, np.int64).reshape(-1)][:max_kept]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


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
        # exp() of wild raw values overflows to inf: a score of 0, or an inf-wide box clamped below
        with np.errstate(over="ignore"):
            return self._decode(raw)

    def _decode(self, raw: torch.Tensor) -> Detections:
        raw = single_image(raw, 3).detach().cpu().float().numpy()
        num_anchors, per_anchor = len(self.anchors), 5 + self.num_classes
        channels, grid_h, grid_w = raw.shape
        if channels != num_anchors * per_anchor:
            raise ValueError(
                f"expected {num_anchors}*(5+{self.num_classes}) = {num_anchors * per_anchor} channels, "
                f"got {channels}"
            )
        pred = raw.reshape(num_anchors, per_anchor, grid_h, grid_w)
        logits = pred[:, 5:]
        # A box's score is objectness * softmax's best: exp(0) / sum(exp(logit - best)).
        best = logits.max(axis=1)
        class_prob = 1.0 / np.exp(logits - best[:, None]).sum(axis=1)
        scores = (_sigmoid(pred[:, 4]) * class_prob).reshape(-1)
        candidates = np.flatnonzero(scores > self.score_threshold)
        scores = scores[candidates]
        # Boxes are decoded for the candidates only (index = anchor, row, column).
        anchor, cell = np.divmod(candidates, grid_h * grid_w)
        row, col = np.divmod(cell, grid_w)
        at = pred[anchor, :, row, col]  # (N, per_anchor)
        classes = at[:, 5:].argmax(axis=1).astype(np.int64)
        cell_h, cell_w = self.input_size[0] / grid_h, self.input_size[1] / grid_w
        sizes = np.asarray(self.anchors, np.float32)[anchor]
        cx, cy = (_sigmoid(at[:, 0]) + col) * cell_w, (_sigmoid(at[:, 1]) + row) * cell_h
        half_w = np.exp(at[:, 2]) * sizes[:, 0] * cell_w / 2
        half_h = np.exp(at[:, 3]) * sizes[:, 1] * cell_h / 2
        boxes = np.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), axis=-1).astype(np.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, self.input_size[1])
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, self.input_size[0])
        kept = batched_nms(boxes, scores, classes, self.iou_threshold, self.max_detections)
        return Detections(boxes=boxes[kept], scores=scores[kept].astype(np.float32), classes=classes[kept])
