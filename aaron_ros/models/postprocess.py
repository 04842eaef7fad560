"""Turn a model's raw output for one image into what a user wants (top-k classes, a mask).

Postprocessors take the raw output of a batch of one (a ROS node handles one frame at a time);
the batch dimension may also be left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from aaron_ros.common.native import argmax_planes


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
    # On a CPU, one compiled pass over the class planes: numpy's maximum then a compare per class
    # is 4x slower right after a cache eviction (12x warm), torch's argmax over the class dim 25x.
    return torch.from_numpy(argmax_planes(logits.detach().float().numpy()))
