"""Image sources for the ROS layer, and ROS 2 bags of ``sensor_msgs/msg/Image`` (or jpeg / png
``CompressedImage``) written and read with ``rosbags`` (pure Python: ``rosbag2`` cannot be
installed everywhere this package runs).

Frames are ``(t_seconds, (H, W, 3) uint8 RGB array)`` pairs, from the photographs that ship with
scikit-image (``sample_frames``), a video file or a folder of images. A bag is a rosbag2 folder
(``metadata.yaml`` beside one ``.mcap`` or ``.db3`` file), as ``ros2 bag record`` writes it;
``read_image_bag`` also takes the bare ``.mcap``/``.db3`` file.
"""
from __future__ import annotations

import heapq
import math
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from aaron_ros.ros.image_conversions import array_to_compressed

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
COMPRESSIONS = ("jpeg", "png")
# Header stamps start at a fixed epoch (2023-11-14 22:13:20 UTC), not now: the same frames give
# the same bag, byte for byte. A replay that needs live stamps restamps (BagPlayer's `restamp`).
START_NS = 1_700_000_000 * 10**9
# Real photographs inside the scikit-image wheel (no download), in their default order.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")
SECONDS_PER_PHOTO = 3.0
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# rosbags writes rosbag2 format 8 or 9 only; 9 is what Jazzy and Kilted write.
BAG_VERSION = 9
# Kilted's message definitions, the distro the wheels here are from.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)


class BagMessage(NamedTuple):
    timestamp_ns: int
    topic: str
    data: bytes  # CDR, as on the wire: rclpy.serialization.deserialize_message takes it as is
    msgtype: str


def _photo(name: str) -> np.ndarray:
    import skimage.data  # imported here: only the sample needs scikit-image

    img = getattr(skimage.data, name)()
    # stereo_motorcycle is (left, right, disparity): the left view is the photograph.
    return img[0] if isinstance(img, tuple) else img


def _window(shape: tuple[int, ...], aspect: float, zoom: float, fx: float, fy: float) -> np.ndarray:
    """Crop window (x0, y0, w, h) of the output's aspect: `zoom` of the largest that fits,
    its centre at fractions (fx, fy) of the room left to move in."""
    h, w = shape[:2]
    cw = min(w, h * aspect) * zoom
    ch = cw / aspect
    return np.array([fx * (w - cw), fy * (h - ch), cw, ch])


def sample_frames(width: int = 640, height: int = 480, fps: float = 30.0, seconds: float = 10.0,
                  seed: int = 0) -> Iterator[tuple[float, np.ndarray]]:
    """A camera-like sequence from real photographs: each photo for a few seconds, a crop window
    panning and zooming across it at constant speed (so every frame moves), resized to
    width x height. The photo order and the motions are drawn from `seed` alone."""
    if width <= 0 or height <= 0 or fps <= 0 or seconds <= 0:
        raise ValueError(f"sample frames need positive width, height, fps and seconds; got "
                         f"{width}x{height}, {fps} fps, {seconds} s")
    rng = np.random.default_rng(seed)
    photos = [_photo(name) for name in rng.permutation(PHOTOS)]
    aspect = width / height
    per_photo = max(1, round(SECONDS_PER_PHOTO * fps))
    segment = -1
    for i in range(max(1, round(seconds * fps))):
        if i // per_photo != segment:
            segment = i // per_photo
            photo = photos[segment % len(photos)]
            # Zoom in or out by 0.2 to 0.4 while panning from one side to the other: even a
            # photo of exactly the output's aspect, with no room to pan at full size, moves.
            zooms = np.array([0.95, 0.65]) + rng.uniform(-0.05, 0.05, 2)
            if rng.random() < 0.5:
                zooms = zooms[::-1]
            lo, hi = rng.uniform(0.0, 0.3, 2), rng.uniform(0.7, 1.0, 2)
            flip = rng.random(2) < 0.5
            start_f, end_f = np.where(flip, hi, lo), np.where(flip, lo, hi)
            start = _window(photo.shape, aspect, zooms[0], *start_f)
            end = _window(photo.shape, aspect, zooms[1], *end_f)
        u = (i % per_photo) / per_photo
        x0, y0, cw, ch = start + (end - start) * u
        # An affine warp samples the window at sub-pixel positions: slow pans glide instead of
        # stepping a whole pixel at a time as integer crops would.
        sx, sy = width / cw, height / ch
        m = np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy]])
        frame = cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        yield i / fps, frame


def frames_from_video(path: str | Path, fps: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Frames of a video file, RGB, timed by `fps` or else by the file's own frame rate.
    Opens and reads the first frame now, so a bad file fails here and not mid-recording."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    ok, first = cap.read() if cap.isOpened() else (False, None)
    if not ok:
        cap.release()
        raise ValueError(f"video {path} cannot be opened or has no frame OpenCV can decode")
    rate = fps or cap.get(cv2.CAP_PROP_FPS)
    if not rate or not math.isfinite(rate) or rate <= 0:
        cap.release()
        raise ValueError(f"video {path} does not say its frame rate; give fps")

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        frame, i = first, 0
        try:
            while frame is not None:
                yield i / rate, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                ok, frame = cap.read()
                frame, i = (frame if ok else None), i + 1
        finally:
            cap.release()

    return frames()


def frames_from_folder(path: str | Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """The image files of a folder in name order, RGB, one every 1/fps seconds."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"image folder {path} does not exist")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        for i, f in enumerate(files):
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"image {f} cannot be decoded")
            yield i / fps, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    return frames()


def resize_frames(frames: Iterable[tuple[float, np.ndarray]], width: int,
                  height: int) -> Iterator[tuple[float, np.ndarray]]:
    """Frames resized to width x height (a video or folder recorded at a chosen size)."""
    for t, frame in frames:
        if frame.shape[:2] != (height, width):
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        yield t, frame


def _image_cdr(frame: np.ndarray, stamp_ns: int, frame_id: str, encoding: str) -> bytes:
    """An Image (rgb8, bgr8) or, for encoding jpeg / png, a CompressedImage, as CDR bytes."""
    if encoding not in ("rgb8", "bgr8", *COMPRESSIONS):
        raise ValueError(f"unsupported encoding {encoding!r}; supported: rgb8, bgr8, {', '.join(COMPRESSIONS)}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
    t = TYPESTORE.types
    header = t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)
    if encoding in COMPRESSIONS:
        c = array_to_compressed(frame, encoding)
        msg = t[COMPRESSED_TYPE](header=header, format=c.format, data=np.frombuffer(bytes(c.data), np.uint8))
        return bytes(TYPESTORE.serialize_cdr(msg, COMPRESSED_TYPE))
    if encoding == "bgr8":
        frame = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    height, width = frame.shape[:2]
    msg = t[IMAGE_TYPE](header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
                        step=width * 3, data=np.ascontiguousarray(frame).reshape(-1))
    return bytes(TYPESTORE.serialize_cdr(msg, IMAGE_TYPE))


def _remove_old_bag(out: Path) -> None:
    # Only a bag folder (or an empty one) is removed: `--overwrite --out .` must not wipe a tree.
    if out.is_dir() and ((out / "metadata.yaml").is_file() or not any(out.iterdir())):
        shutil.rmtree(out)
    else:
        raise ValueError(f"{out} exists and is not a bag folder (no metadata.yaml); not removing it")


def _numbered(camera: int, frames: Iterable[tuple[float, np.ndarray]]) -> Iterator[tuple[float, int, np.ndarray]]:
    # A function, not a generator expression in a loop: each stream keeps its own camera index.
    return ((t, camera, frame) for t, frame in frames)


def write_image_bag(out_path: str | Path, frames: Iterable[tuple[float, np.ndarray]],
                    topic: str = "/camera/image_raw", frame_id: str = "camera", storage: str = "mcap",
                    encoding: str = "rgb8", progress: bool = True, overwrite: bool = False,
                    total: int | None = None) -> int:
    """Write frames as a rosbag2 folder of Image messages stamped START_NS + t (the bag's receive
    time is the same stamp); returns the number written. `encoding` jpeg or png writes
    CompressedImage messages instead (on `topic` as given: image_transport would name it
    `<camera topic>/compressed`). `total` only sizes the progress bar."""
    return write_cameras_bag(out_path, {topic: (frame_id, frames)}, storage, encoding, progress, overwrite, total)


def write_cameras_bag(out_path: str | Path, cameras: Mapping[str, tuple[str, Iterable[tuple[float, np.ndarray]]]],
                      storage: str = "mcap", encoding: str = "rgb8", progress: bool = True,
                      overwrite: bool = False, total: int | None = None) -> int:
    """`write_image_bag` for several cameras: `cameras` maps each topic to its frame_id and its
    frames, written in stamp order (frames of one stamp on several topics: one moment seen by
    each camera)."""
    out = Path(out_path)
    if storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r}; known: {', '.join(STORAGES)}")
    if out.suffix in (".mcap", ".db3"):
        raise ValueError(f"a bag is a folder (it holds metadata.yaml and the {storage} file): "
                         f"give a folder name such as {out.with_suffix('')}, not {out}")
    if out.exists():
        if not overwrite:
            raise ValueError(f"{out} already exists; remove it, or pass --overwrite (overwrite=True)")
        _remove_old_bag(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with Writer(out, version=BAG_VERSION, storage_plugin=STORAGES[storage]) as writer:
            msgtype = COMPRESSED_TYPE if encoding in COMPRESSIONS else IMAGE_TYPE
            conns = [(writer.add_connection(topic, msgtype, typestore=TYPESTORE), frame_id)
                     for topic, (frame_id, _) in cameras.items()]
            streams = [_numbered(i, frames) for i, (_, frames) in enumerate(cameras.values())]
            for t, i, frame in tqdm(heapq.merge(*streams, key=lambda x: x[:2]), total=total,
                                    desc=f"recording {out.name}", unit="frame", disable=not progress):
                stamp = START_NS + round(t * 1e9)
                conn, frame_id = conns[i]
                writer.write(conn, stamp, _image_cdr(frame, stamp, frame_id, encoding))
                count += 1
            if not count:
                raise ValueError(f"no frames to write to {out}")
    except BaseException:
        # A half-written bag would later read as a corrupted one: leave nothing behind.
        shutil.rmtree(out, ignore_errors=True)
        raise
    return count


def open_reader(path: Path) -> Reader:
    """An open rosbag2 reader (close it after); a clear error for a missing or unreadable bag."""
    if not path.exists():
        raise FileNotFoundError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, ValueError, OSError, KeyError, IndexError) as exc:
        raise ValueError(f"bag {path} cannot be read (truncated or not a rosbag2 bag?): {exc}") from None
    return reader


def bag_topics(path: str | Path) -> dict[str, str]:
    """Topic -> message type of every topic in a bag."""
    reader = open_reader(Path(path))
    try:
        return {c.topic: c.msgtype for c in reader.connections}
    finally:
        reader.close()


def image_topics(path: str | Path, topic: str | None = None) -> list[str]:
    """`[topic]`, or every image topic (Image or CompressedImage) of the bag; a clear error naming
    the bag's topics if the topic is missing or no image, or the bag has no image topic."""
    topics = bag_topics(path)
    have = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"
    kinds = " or ".join(IMAGE_TYPES)
    if topic is None:
        wanted = sorted(t for t, m in topics.items() if m in IMAGE_TYPES)
        if not wanted:
            raise ValueError(f"bag {path} has no {kinds} topic; its topics: {have}")
        return wanted
    if topic not in topics:
        raise ValueError(f"bag {path} has no topic {topic}; its topics: {have}")
    if topics[topic] not in IMAGE_TYPES:
        raise ValueError(f"topic {topic} in bag {path} is {topics[topic]}, not {kinds}")
    return [topic]


def read_image_bag(path: str | Path, topic: str | None = None,
                   start_s: float = 0.0) -> Iterator[BagMessage]:
    """The Image messages of `topic` (default: every Image topic) in recorded order, from
    `start_s` seconds after the bag's first message.
    The bag and topic are checked now; a bag damaged past its header fails when reached,
    also as a ValueError naming the file."""
    path = Path(path)
    topics = image_topics(path, topic)

    def messages() -> Iterator[BagMessage]:
        reader = open_reader(path)
        try:
            conns = [c for c in reader.connections if c.topic in topics]
            start = reader.start_time + round(start_s * 1e9)
            for conn, stamp, data in reader.messages(connections=conns, start=start):
                yield BagMessage(stamp, conn.topic, bytes(data), conn.msgtype)
        except (ReaderError, ValueError, OSError, KeyError, IndexError) as exc:
            raise ValueError(f"bag {path} is damaged: {exc}") from None
        finally:
            reader.close()

    return messages()
