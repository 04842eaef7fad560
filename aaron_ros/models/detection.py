"""YOLO-v2 style box decoding and class-aware non-maximum suppression, in plain torch."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .postprocess import single_image


@dataclass(frozen=True)
class Detections:
    boxes: torch.Tensor  # (N, 4) x1, y1, x2, y2 in input pixels
    scores: torch.Tensor  # (N,) best score first
    classes: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return self.scores.numel()


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of (N, 4) and (M, 4) corner boxes -> (N, M); degenerate boxes give 0."""
    area_a = (a[:, 2] - a[:, 0]).clamp_min(0) * (a[:, 3] - a[:, 1]).clamp_min(0)
    area_b = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp_min(0).prod(dim=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / union.clamp_min(torch.finfo(union.dtype).tiny)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Greedy NMS within each class; indices of the kept boxes, highest score first."""
    order = scores.argsort(descending=True, stable=True)  # ties keep input order: deterministic
    boxes, classes = boxes[order], classes[order]
    suppresses = (box_iou(boxes, boxes) > iou_threshold) & (classes[:, None] == classes[None, :])
    keep = torch.ones(order.numel(), dtype=torch.bool)
    for i in range(order.numel()):
        if keep[i]:
            keep[i + 1 :] &= ~suppresses[i, i + 1 :]
    return order[keep]


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
        raw = single_image(raw, 3).float()
        num_anchors, per_anchor = len(self.anchors), 5 + self.num_classes
        channels, grid_h, grid_w = raw.shape
        if channels != num_anchors * per_anchor:
            raise ValueError(
                f"expected {num_anchors}*(5+{self.num_classes}) = {num_anchors * per_anchor} channels, "
                f"got {channels}"
            )
        pred = raw.view(num_anchors, per_anchor, grid_h, grid_w)
        cell_h, cell_w = self.input_size[0] / grid_h, self.input_size[1] / grid_w
        gy, gx = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
        anchors = torch.tensor(self.anchors).view(num_anchors, 2, 1, 1)

        cx = (pred[:, 0].sigmoid() + gx) * cell_w
        cy = (pred[:, 1].sigmoid() + gy) * cell_h
        half_w = pred[:, 2].exp() * anchors[:, 0] * cell_w / 2
        half_h = pred[:, 3].exp() * anchors[:, 1] * cell_h / 2
        boxes = torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=-1).view(-1, 4)
        # Clamping also tames exp() overflow from wild raw values: inf-wide boxes become the image.
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, self.input_size[1])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, self.input_size[0])

        class_prob, classes = pred[:, 5:].softmax(dim=1).max(dim=1)
        scores = (pred[:, 4].sigmoid() * class_prob).reshape(-1)
        classes = classes.reshape(-1)

        candidates = (scores > self.score_threshold).nonzero().squeeze(1)
        survivors = batched_nms(boxes[candidates], scores[candidates], classes[candidates], self.iou_threshold)
        kept = candidates[survivors[: self.max_detections]]
        return Detections(boxes=boxes[kept], scores=scores[kept], classes=classes[kept])
