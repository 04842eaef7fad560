"""The package's compiled host kernels: frame work numpy does slowly, written in C
(`src/host_kernels.c`) and built with the messages into `libaaron_ros_host.so`, which is installed
beside the package's modules. Called through ctypes, which releases the interpreter lock."""
from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import aaron_ros

LIBRARY = "libaaron_ros_host.so"
_P, _I, _F, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_double
SIGNATURES = {  # (result, *arguments), as in the C source
    "aaron_argmax_planes": (None, _P, _I, _I, _P),
    "aaron_to_planes": (None, _P, _I, _P, _P, ctypes.c_int32, _P),
    "aaron_yolo_candidates": (_I, _P, _I, _I, _I, _I, _P, _F, _F, _F, _P, _P, _P),
    "aaron_nms": (_I, _P, _P, _P, _I, _D, _I, _P),
}


@functools.cache
def _library() -> ctypes.CDLL:
    # A source checkout's package path holds the install prefix's aaron_ros too (see __init__).
    for folder in aaron_ros.__path__:
        path = Path(folder) / LIBRARY
        if path.is_file():
            lib = ctypes.CDLL(str(path))
            for name, (result, *args) in SIGNATURES.items():
                getattr(lib, name).restype, getattr(lib, name).argtypes = result, args
            return lib
    raise ImportError(f"{LIBRARY} is in none of aaron_ros's folders ({', '.join(aaron_ros.__path__)}): "
                      "build the package (scripts/setup, or colcon build)")


def argmax_planes(planes: np.ndarray) -> np.ndarray:
    """(C, H, W) float32 class planes -> (H, W) uint8: the index of each pixel's largest, ties to
    the lower class (as an argmax's), a NaN never chosen. At most 256 classes."""
    if planes.ndim != 3 or not 0 < planes.shape[0] <= 256:
        raise ValueError(f"expected (C, H, W) planes with 1 to 256 classes, got shape {planes.shape}")
    planes = np.ascontiguousarray(planes, dtype=np.float32)
    mask = np.empty(planes.shape[1:], np.uint8)
    _library().aaron_argmax_planes(planes.ctypes.data, planes.shape[0], mask.size, mask.ctypes.data)
    return mask


def to_planes(rgb: np.ndarray, mean: np.ndarray, scale: np.ndarray, bgr: bool) -> np.ndarray:
    """An (H, W, 3) uint8 RGB image -> (1, 3, H, W) float32 planes, plane k = (value - mean[k]) *
    scale[k] of channel k (of channel 2 - k when `bgr`): a model's normalised input."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")
    rgb = np.ascontiguousarray(rgb)
    mean, scale = np.ascontiguousarray(mean, np.float32), np.ascontiguousarray(scale, np.float32)
    if mean.shape != (3,) or scale.shape != (3,):
        raise ValueError(f"expected 3 means and 3 scales, got {mean.shape} and {scale.shape}")
    planes = np.empty((1, 3, *rgb.shape[:2]), np.float32)
    _library().aaron_to_planes(rgb.ctypes.data, rgb.shape[0] * rgb.shape[1], mean.ctypes.data, scale.ctypes.data,
                               int(bgr), planes.ctypes.data)
    return planes


def yolo_candidates(raw: np.ndarray, anchors: np.ndarray | Sequence[tuple[float, float]], input_hw: tuple[int, int],
                    threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A YOLO-v2 head's (A * (5 + C), H, W) output, `anchors` (A, 2) (w, h) in grid cells -> the
    boxes scoring above `threshold`: (N, 4) float32 x1, y1, x2, y2 in input pixels (clipped to
    `input_hw`), (N,) float32 scores, (N,) int64 classes, in (anchor, row, column) order."""
    raw = np.ascontiguousarray(raw, dtype=np.float32)
    anchors = np.ascontiguousarray(anchors, dtype=np.float32)
    channels, h, w = raw.shape
    count = len(anchors) * h * w
    boxes, scores, classes = np.empty((count, 4), np.float32), np.empty(count, np.float32), np.empty(count, np.int64)
    found = _library().aaron_yolo_candidates(
        raw.ctypes.data, len(anchors), channels // len(anchors) - 5, h, w, anchors.ctypes.data,
        float(input_hw[0]), float(input_hw[1]), threshold, boxes.ctypes.data, scores.ctypes.data, classes.ctypes.data)
    return boxes[:found], scores[:found], classes[:found]


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
        max_kept: int) -> np.ndarray:
    """Greedy NMS within each class (see `models.batched_nms`): the kept indices, best first."""
    boxes = np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    classes = np.ascontiguousarray(classes, dtype=np.int64)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(f"{len(boxes)} boxes, {len(scores)} scores and {len(classes)} classes: one each per box")
    kept = np.empty(min(len(boxes), max_kept), np.int64)
    count = _library().aaron_nms(boxes.ctypes.data, scores.ctypes.data, classes.ctypes.data, len(boxes),
                                 iou_threshold, len(kept), kept.ctypes.data)
    if count < 0:
        raise MemoryError("no memory for non-maximum suppression's ranking")
    return kept[:count]
