"""What makes a result readable downstream: class names from a labels file, a mask at the image's
resolution, and the image annotated with the result for rviz or Foxglove. Plain functions on
arrays; the perception component calls them inside a frame's last grant."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
MASK_ALPHA = 0.45  # the mask's share of an annotated pixel's colour


def read_labels(path: str | Path) -> list[str]:
    """Class names, one per line (line k names class id k; trailing blanks ignored); a ValueError
    naming the file when it cannot be read or names nothing."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"labels file {path}: cannot be read: {exc}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"labels file {path} names no class (one name per line)")
    return [line.strip() for line in lines]


def names_of(class_ids: Sequence[int], labels: Sequence[str]) -> list[str]:
    """The label of each id; "" for an id the labels do not reach."""
    return [labels[i] if 0 <= i < len(labels) else "" for i in class_ids]


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) class mask at the image's (height, width): nearest neighbour, so ids stay ids."""
    if mask.shape[:2] == tuple(size):
        return mask
    return cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def _colour(class_id: int) -> tuple[int, int, int]:
    """A fixed, distinct-enough colour per class id (golden-angle hues)."""
    hsv = np.uint8([[[int(class_id * 137.508 / 2) % 180, 200, 255]]])  # OpenCV hues run 0-180
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _caption(class_id: int, score: float | None, labels: Sequence[str]) -> str:
    name = names_of([class_id], labels)[0] or f"class {class_id}"
    return name if score is None else f"{name} {score:.2f}"


def annotate(image: np.ndarray, class_ids: Sequence[int], scores: Sequence[float],
             boxes: Sequence[float] = (), mask: np.ndarray | None = None,
             labels: Sequence[str] = ()) -> np.ndarray:
    """A copy of the (H, W, 3) RGB `image` with the result drawn on it: each box with its label and
    score, or the mask as a colour overlay, or (classes) the top class at the top left."""
    out = image.copy()
    scale = max(0.4, min(out.shape[:2]) / 600)
    if mask is not None:
        ids = np.unique(mask)
        palette = np.zeros((int(ids.max()) + 1, 3), np.uint8)
        for i in ids:
            palette[i] = _colour(int(i))
        overlay = palette[mask]
        out = cv2.addWeighted(out, 1.0 - MASK_ALPHA, overlay, MASK_ALPHA, 0.0)
        return out
    if len(boxes):
        for k, (cid, score) in enumerate(zip(class_ids, scores)):
            x1, y1, x2, y2 = (int(round(v)) for v in boxes[4 * k:4 * k + 4])
            colour = _colour(cid)
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, max(1, int(2 * scale)))
            cv2.putText(out, _caption(cid, score, labels), (x1, max(12, y1 - 4)), FONT, 0.5 * scale, colour,
                        max(1, int(scale)), cv2.LINE_AA)
        return out
    if len(class_ids):
        cv2.putText(out, _caption(class_ids[0], scores[0] if len(scores) else None, labels), (8, int(24 * scale)),
                    FONT, 0.7 * scale, (255, 255, 0), max(1, int(2 * scale)), cv2.LINE_AA)
    return out
