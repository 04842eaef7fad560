"""Conversions between ``sensor_msgs/msg/Image`` (or a jpeg / png ``CompressedImage``) and model
tensors.

Written for a perception node that must never crash on bad input: every
rejection is an ``ImageError`` (a ``ValueError``) whose message names the
problem and the numbers involved, so the node can log it and drop the frame.

Array convention: ``image_to_array`` always returns RGB (H, W, 3) or mono
(H, W, 1) uint8; ``array_to_image`` takes arrays in that same convention and
the ``encoding`` argument only picks the byte layout on the wire.
"""

from __future__ import annotations

import array
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from aaron_ros.common import native
from aaron_ros.models.source import IMAGENET_MEAN, IMAGENET_STD

# Bytes per pixel for each supported 8-bit encoding.
CHANNELS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "mono8": 1}
LETTERBOX_FILL = 114  # the grey YOLO-style letterboxes pad with
T = TypeVar("T")


@dataclass(frozen=True)
class Fit:
    """Where an image lies in the model's input: input pixel = image pixel * scale + pad, over
    `width` x `height` input pixels (all of the input when stretched)."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    width: int
    height: int

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) x1, y1, x2, y2 in input pixels -> in image pixels."""
        pad = np.array([self.pad_x, self.pad_y] * 2, np.float32)
        return (boxes - pad) / np.array([self.scale_x, self.scale_y] * 2, np.float32)

    def crop(self, plane: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
        """The part of an (h, w, ...) array over the whole input (of `input_hw`, or a mask at
        another resolution) that shows the image, without the padding."""
        ky, kx = plane.shape[0] / input_hw[0], plane.shape[1] / input_hw[1]
        return plane[round(self.pad_y * ky):round((self.pad_y + self.height) * ky),
                     round(self.pad_x * kx):round((self.pad_x + self.width) * kx)]


def fit(image_hw: tuple[int, int], input_hw: tuple[int, int], letterbox: bool = False) -> Fit:
    """How an image of (height, width) `image_hw` is fitted to the model's `input_hw`: stretched
    (each axis scaled on its own), or letterboxed (scaled by one factor to fit, centred, padded)."""
    (h, w), (in_h, in_w) = image_hw, input_hw
    if not letterbox:
        return Fit(in_w / w, in_h / h, 0, 0, in_w, in_h)
    s = min(in_w / w, in_h / h)
    new_w, new_h = max(1, min(in_w, round(w * s))), max(1, min(in_h, round(h * s)))
    return Fit(new_w / w, new_h / h, (in_w - new_w) // 2, (in_h - new_h) // 2, new_w, new_h)


class ImageError(ValueError):
    """An image message or array that cannot be converted."""


def _channels(encoding: str) -> int:
    try:
        return CHANNELS[encoding]
    except (KeyError, TypeError):
        supported = ", ".join(CHANNELS)
        raise ImageError(f"unsupported encoding {encoding!r}; supported: {supported}") from None


def _data_as_uint8(data: Any) -> np.ndarray:
    # Fast path: rclpy hands us array.array('B'); bytes-likes are viewed without copying.
    if isinstance(data, (array.array, bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    # Slow path (lists etc.): refuse values that do not fit a byte instead of wrapping them.
    try:
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    except (OverflowError, TypeError, ValueError) as exc:
        raise ImageError(f"image data is not a sequence of bytes: {exc}") from None


# CDR bytes of an Image (or any message starting with a Header): after the 4-byte encapsulation
# header the stamp is the first field, int32 sec then uint32 nanosec, in the byte order the
# encapsulation's second byte names (1: little endian).
def _stamp_format(data: bytes) -> str:
    return "<iI" if data[1] & 1 else ">iI"


@dataclass(frozen=True, slots=True)
class ImageView:
    """A sensor_msgs/Image read straight from its CDR bytes: the fields an Image has, its data a
    view of those bytes. rclpy's deserialisation copies the pixels twice (0.3 ms of the executor
    thread per VGA image, cache-cold); this reads the few fields around them (about 5 µs)."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


def image_view(data: bytes) -> ImageView:
    """The Image in `data` (little-endian plain CDR, what ROS 2's DDS layers send), as a view;
    ValueError when the bytes are not that (another encapsulation, or a length past the end)."""
    if data[:2] != b"\x00\x01":
        raise ValueError(f"not little-endian plain CDR (encapsulation {bytes(data[:2]).hex()})")
    try:
        return _image_view(data)
    except (struct.error, IndexError) as exc:  # cut short
        raise ValueError(f"{len(data)} bytes are too few for an Image: {exc}") from None


def _image_view(data: bytes) -> ImageView:
    mv = memoryview(data)
    at = 4  # a field aligns to its size, counted from the end of the encapsulation header

    def uint32s(count: int) -> tuple[int, ...]:
        nonlocal at
        at += -(at - 4) % 4
        values = struct.unpack_from(f"<{count}I", data, at)
        at += 4 * count
        return values

    def text() -> str:
        nonlocal at
        (n,) = uint32s(1)  # with its terminating NUL
        if n < 1 or at + n > len(data):
            raise ValueError(f"a string of {n} bytes at offset {at} runs past the end ({len(data)} bytes)")
        at += n
        return bytes(mv[at - n:at - 1]).decode()

    sec, nanosec = struct.unpack_from("<iI", data, at)
    at += 8
    frame_id = text()
    height, width = uint32s(2)
    encoding = text()
    is_bigendian = data[at]
    at += 1
    step, n = uint32s(2)
    if at + n > len(data):
        raise ValueError(f"image data of {n} bytes at offset {at} runs past the end ({len(data)} bytes)")
    return ImageView(Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id), height, width, encoding,
                     is_bigendian, step, mv[at:at + n])


def restamped(data: bytes, stamp_ns: int) -> bytes:
    """The serialised message with header.stamp replaced (a copy with 8 new bytes)."""
    return data[:4] + struct.pack(_stamp_format(data), stamp_ns // 10**9, stamp_ns % 10**9) + data[12:]


def check_image(msg: Image) -> np.ndarray:
    """The message's bytes as a flat uint8 view, once its encoding, size and step agree with them
    (cheap: nothing is copied); raises ImageError naming what is wrong."""
    encoding = msg.encoding
    channels = _channels(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError(f"image has zero size ({width}x{height})")
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageError(
            f"image step {step} is smaller than width*channels = {row_bytes} "
            f"for {encoding} {width}x{height}"
        )
    buf = _data_as_uint8(msg.data)
    expected = step * height
    if buf.size < expected:
        raise ImageError(
            f"image data truncated: {buf.size} bytes, expected step*height = {expected}"
        )
    if buf.size > expected:
        # Extra bytes almost always mean width/height/step disagree with the payload.
        raise ImageError(
            f"image data size mismatch: {buf.size} bytes, expected step*height = {expected} "
            f"({encoding} {width}x{height}, step {step})"
        )
    return buf


def image_to_array(msg: Image, copy: bool = True) -> np.ndarray:
    """Decode an rgb8/bgr8/mono8 message to (H, W, 3) RGB or (H, W, 1) uint8.

    The result is a fresh array: it never aliases ``msg.data`` (which may be
    read-only bytes or reused by the caller), unless ``copy`` is False: then an
    rgb8 or mono8 image is a read-only view of it (a frame's conversion reads the
    pixels once, to resize them, and a copy of a VGA image is 0.1 ms for nothing).
    ``is_bigendian`` is irrelevant for 8-bit encodings and is ignored.
    """
    buf = check_image(msg)
    encoding, channels = msg.encoding, CHANNELS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels
    # Drop per-row padding (step may exceed width*channels), then split pixels.
    pixels = buf.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if encoding == "bgr8":
        # cvtColor copies and swaps in one pass (much faster than a reversed-stride copy).
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if not copy:
        pixels.flags.writeable = False
        return pixels
    return np.array(pixels, dtype=np.uint8, order="C", copy=True)


# The first bytes of each payload format a CompressedImage may carry.
MAGIC: dict[str, bytes] = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}


def compressed_format(msg: CompressedImage) -> str:
    """`jpeg` or `png`, once the message's `format` (image_transport writes e.g. "rgb8; jpeg
    compressed bgr8", others just "jpeg") and its payload's first bytes agree (cheap: nothing is
    decoded); raises ImageError naming what is wrong."""
    text = str(msg.format).lower()
    named = [f for f in MAGIC if f in text or (f == "jpeg" and "jpg" in text)]
    if len(named) != 1:
        raise ImageError(f"compressed image format {msg.format!r} names no one of {', '.join(MAGIC)}")
    head = bytes(_data_as_uint8(msg.data)[:8])
    if not head.startswith(MAGIC[named[0]]):
        raise ImageError(f"compressed image says {named[0]} but its {len(msg.data)} bytes do not start as one")
    return named[0]


def decode_compressed(msg: CompressedImage) -> np.ndarray:
    """(H, W, 3) RGB uint8 of a jpeg or png CompressedImage (a grey one too); raises ImageError
    for a payload that does not decode."""
    fmt = compressed_format(msg)
    bgr = cv2.imdecode(_data_as_uint8(msg.data), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"the {fmt} payload ({len(msg.data)} bytes) does not decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def array_to_compressed(arr: np.ndarray, fmt: str = "jpeg", header: Header | None = None,
                        quality: int = 90) -> CompressedImage:
    """Encode a uint8 RGB (H, W, 3) array as a CompressedImage, named as image_transport does."""
    if fmt not in MAGIC:
        raise ImageError(f"unknown compressed format {fmt!r}; known: {', '.join(MAGIC)}")
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"array must be (H, W, 3) uint8 RGB, got {getattr(arr, 'shape', type(arr))}")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageError(f"cannot encode a {arr.shape} array as {fmt}")
    return CompressedImage(header=header or Header(), format=f"rgb8; {fmt} compressed bgr8", data=buf.tobytes())


def opencv_on_callers_thread() -> None:
    """OpenCV runs each call on the calling thread only (a process-wide setting). A frame's host work
    (conversion, mask resize, drawing) runs inside its lane's grant, on that lane's one thread;
    OpenCV's own pool would hand part of a resize to a core the coordinator granted to another lane
    and wait for it there: the detector's slowest conversions took 3.0-4.9 ms for 0.2 ms of the
    lane's CPU, 0.3-1.1 without the pool (results/ros_bench/opencv_tail_ab_cpu2_amd_epyc/)."""
    cv2.setNumThreads(1)


class ModelInput:
    """How images become one model's input: resized to `input_size` (H, W), stretched or
    letterboxed (see `fit`), scaled to [0, 1], normalised by `mean` and `std` (in the tensor's
    channel order), as a (1, 3, H, W) float32 tensor whose channels are BGR when `bgr`.

    Checked and prepared once, so that a frame's conversion is OpenCV's resize and one compiled
    pass (`common.native.to_planes`): right after a model has run, every small numpy step costs
    10-20 µs of cold caches, and OpenCV's blobFromImage, which does the same in several passes,
    takes 1.5-2x as long (0.34 against 0.20 ms to 320x320 from 640x480, cold)."""

    def __init__(self, input_size: tuple[int, int], mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, bgr: bool = False, letterbox: bool = False):
        self.height, self.width = (int(v) for v in input_size)
        if self.height <= 0 or self.width <= 0:
            raise ImageError(f"input_size must be positive (H, W), got {tuple(input_size)}")
        mean_a, std_a = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
        if mean_a.shape != (3,) or std_a.shape != (3,) or np.any(std_a == 0):
            raise ImageError(f"mean and std need 3 values with non-zero std, got {tuple(mean)} / {tuple(std)}")
        self.bgr, self.letterbox = bgr, letterbox
        # (x / 255 - mean) / std = (x - 255 mean) * scale, per channel of the tensor.
        self._scale, self._mean = 1.0 / (255.0 * std_a), 255.0 * mean_a

    def __call__(self, arr: np.ndarray) -> torch.Tensor:
        """A uint8 (H, W), (H, W, 1) or (H, W, 3) RGB array as the model's input."""
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8:
            raise ImageError(f"array must be a uint8 numpy array, got {getattr(arr, 'dtype', type(arr))}")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3):
            raise ImageError(f"array shape {arr.shape} is not (H, W), (H, W, 1) or (H, W, 3)")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ImageError(f"image has zero size ({arr.shape[1]}x{arr.shape[0]})")
        if arr.shape[2] == 1:  # mono is replicated, so that the per-channel stats still apply
            arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_GRAY2RGB)
        if self.letterbox:
            f = fit(arr.shape[:2], (self.height, self.width), True)
            if (f.height, f.width) != (self.height, self.width):  # scaled into a grey canvas
                canvas = np.full((self.height, self.width, 3), LETTERBOX_FILL, np.uint8)
                f.crop(canvas, (self.height, self.width))[...] = _resized(arr, f.width, f.height)
                arr = canvas
        return torch.from_numpy(native.to_planes(_resized(arr, self.width, self.height), self._mean, self._scale,
                                                 self.bgr))


def array_to_tensor(arr: np.ndarray, input_size: tuple[int, int], mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD, bgr: bool = False, letterbox: bool = False) -> torch.Tensor:
    """One image as a model's input (see `ModelInput`)."""
    return ModelInput(input_size, mean, std, bgr, letterbox)(arr)


def _resized(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    if arr.shape[:2] == (height, width):
        return arr
    return cv2.resize(np.ascontiguousarray(arr), (width, height), interpolation=cv2.INTER_LINEAR)


def image_to_tensor(
    msg: Image,
    input_size: tuple[int, int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """``image_to_array`` then ``array_to_tensor``: message -> (1, 3, H, W) float32."""
    return array_to_tensor(image_to_array(msg), input_size, mean, std)


def array_to_image(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """Encode a uint8 RGB (H, W, 3) or mono (H, W) / (H, W, 1) array as an Image.

    For ``bgr8`` the RGB array is swapped on the wire, so
    ``image_to_array(array_to_image(a, 'bgr8'))`` gives ``a`` back.
    """
    channels = _channels(encoding)
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8:
        raise ImageError(f"array must be a uint8 numpy array, got {getattr(arr, 'dtype', type(arr))}")
    if channels == 1 and arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    expected = "(H, W, 3)" if channels == 3 else "(H, W) or (H, W, 1)"
    if arr.ndim != (3 if channels == 3 else 2) or (channels == 3 and arr.shape[2] != 3):
        raise ImageError(f"array shape {arr.shape} does not fit {encoding}; expected {expected}")
    height, width = arr.shape[:2]
    if height == 0 or width == 0:
        raise ImageError(f"image has zero size ({width}x{height})")
    if encoding == "bgr8":
        arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2BGR)
    arr = np.ascontiguousarray(arr)

    msg = Image()
    msg.header = header if header is not None else Header()
    msg.height, msg.width = height, width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = width * channels
    # Build array('B') ourselves: assigning bytes/lists makes rclpy range-check every byte in Python.
    data = array.array("B")
    data.frombytes(arr.data)
    msg.data = data
    return msg


def mask_to_image(mask: torch.Tensor | np.ndarray, header: Header | None = None) -> Image:
    """Encode an integer (H, W) class mask as mono8; values must fit 0..255."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ and not np.issubdtype(mask.dtype, np.integer):
        raise ImageError(f"mask must have an integer dtype, got {mask.dtype}")
    if mask.ndim != 2:
        raise ImageError(f"mask shape {mask.shape} is not (H, W)")
    if mask.size == 0:
        raise ImageError(f"image has zero size ({mask.shape[1]}x{mask.shape[0]})")
    if mask.dtype not in (np.uint8, np.bool_):  # others are checked (two passes over the mask)
        lo, hi = int(mask.min()), int(mask.max())
        if lo < 0 or hi > 255:
            raise ImageError(f"mask values must fit mono8 0..255, got min {lo} max {hi}")
    return array_to_image(mask.astype(np.uint8, copy=False), "mono8", header)


class SharedConversions:
    """One conversion per image and input size for the components of a process: the first
    component to need a frame converts it, the others on the same topic take the same tensor
    (or wait for it while it is being made). Only the newest `keep` images are remembered."""

    def __init__(self, keep: int = 16):
        self.keep = keep
        self._made: OrderedDict[Hashable, Future] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> tuple[T, bool]:
        """What `make` made for `key` (a tensor, with what else the caller keeps beside it), and
        whether this call made it."""
        with self._lock:
            fut = self._made.get(key)
            mine = fut is None
            if mine:
                fut = self._made[key] = Future()
                while len(self._made) > self.keep:
                    self._made.popitem(last=False)
        if mine:
            try:
                fut.set_result(make())
            except BaseException as exc:  # the others waiting on it get the same error
                fut.set_exception(exc)
        return fut.result(), mine
