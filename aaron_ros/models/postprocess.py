"""Turn a model's raw output for one image into what a user wants (top-k classes, a mask).

Postprocessors take the raw output of a batch of one (a ROS node handles one frame at a time);
the batch dimension may also be left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def single_image(raw: torch.Tensor, ndim: int) -> torch.Tensor:
    """`raw` without its batch dimension; refuses batches of more than one."""
    if raw.dim() == ndim + 1:
        if raw.shape[0] != 1:
            raise ValueError(f"postprocess takes one image at a time, got a batch of {raw.shape[0]}")
        return raw[0]
    if raw.dim() != ndim:
        raise ValueError(f"expected a {ndim}-d output (or batch of one), got shape {tuple(raw.shape)}")
    return raw


@dataclass(frozen=True)
class Classification:
    class_ids: torch.Tensor  # (k,) int64, most likely first
    scores: torch.Tensor  # (k,) softmax probabilities


def top_k_classes(logits: torch.Tensor, k: int = 5) -> Classification:
    probs = torch.softmax(single_image(logits, 1).float(), dim=0)
    scores, ids = probs.topk(min(k, probs.numel()))
    return Classification(class_ids=ids, scores=scores)


def argmax_mask(logits: torch.Tensor) -> torch.Tensor:
    """(C, H, W) per-pixel class logits -> (H, W) uint8 class-id mask."""
    logits = single_image(logits, 3)
    if logits.shape[0] > 256:
        raise ValueError(f"a uint8 mask holds at most 256 classes, got {logits.shape[0]}")
    if logits.device.type != "cpu":
        return logits.argmax(dim=0).to(torch.uint8)
    # On a CPU a running maximum over the (contiguous) class planes is about twice as fast as
    # torch's argmax over either dim. Ties go to the lower class, as argmax's do.
    planes = logits.detach().float().numpy()
    best = planes[0].copy()
    mask = np.zeros(best.shape, np.uint8)
    greater = np.empty(best.shape, bool)
    for c in range(1, len(planes)):
        np.greater(planes[c], best, out=greater)
        np.maximum(best, planes[c], out=best)
        np.putmask(mask, greater, c)
    return torch.from_numpy(mask)
