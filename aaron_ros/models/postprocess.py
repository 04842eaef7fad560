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
    # On a CPU, numpy's elementwise maximum over the (contiguous) class planes, then one compare
    # per class against it, is 2-5x faster than torch's argmax over either dim. Descending, so
    # that ties go to the lower class, as argmax's do.
    planes = logits.detach().float().numpy()
    best = planes.max(axis=0)
    mask = np.full(best.shape, len(planes) - 1, np.uint8)
    equal = np.empty(best.shape, bool)
    for c in range(len(planes) - 2, -1, -1):
        np.equal(planes[c], best, out=equal)
        np.copyto(mask, np.uint8(c), where=equal)
    return torch.from_numpy(mask)
