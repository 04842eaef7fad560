import array

import cv2
import numpy as np
import pytest
import torch
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from aaron_ros.ros import image_conversions as conversions
from aaron_ros.ros.image_conversions import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageError,
    ModelInput,
    SharedConversions,
    array_to_compressed,
    array_to_image,
    compressed_format,
    decode_compressed,
    image_to_array,
    image_to_tensor,
    image_view,
    mask_to_image,
)


def make_msg(encoding: str, width: int, height: int, step: int, data: bytes) -> Image:
    msg = Image()
    msg.encoding = encoding
    msg.width = width
    msg.height = height
    msg.step = step
    msg.data = array.array("B", data)
    return msg


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# --- round trips -----------------------------------------------------------


def test_rgb8_round_trip(rng):
    arr = rng.integers(0, 256, size=(7, 11, 3), dtype=np.uint8)
    header = Header(frame_id="camera")
    msg = array_to_image(arr, "rgb8", header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (7, 11, 33, "rgb8")
    assert msg.header.frame_id == "camera"
    assert bytes(msg.data) == arr.tobytes()
    out = image_to_array(msg)
    assert out.shape == (7, 11, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)
    assert not np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    view = image_to_array(msg, copy=False)  # the same pixels, read in place
    np.testing.assert_array_equal(view, arr)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8)) and not view.flags.writeable


def test_bgr8_message_comes_back_as_rgb():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    # Wire bytes in BGR order.
    msg = make_msg("bgr8", 3, 2, 9, rgb[..., ::-1].tobytes())
    out = image_to_array(msg)
    np.testing.assert_array_equal(out, rgb)
    assert tuple(out[1, 2]) == (10, 20, 30)


def test_bgr8_array_to_image_round_trip(rng):
    arr = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    msg = array_to_image(arr, "bgr8")
    assert bytes(msg.data) == arr[..., ::-1].tobytes()
    np.testing.assert_array_equal(image_to_array(msg), arr)


def test_mono8_round_trip(rng):
    arr = rng.integers(0, 256, size=(6, 9), dtype=np.uint8)
    msg = array_to_image(arr, "mono8")
    assert (msg.step, msg.encoding) == (9, "mono8")
    out = image_to_array(msg)
    assert out.shape == (6, 9, 1)
    np.testing.assert_array_equal(out[..., 0], arr)


@pytest.mark.parametrize(("encoding", "channels"), [("rgb8", 3), ("bgr8", 3), ("mono8", 1)])
def test_padded_step_is_honoured(rng, encoding, channels):
    width, height, pad = 5, 4, 7
    arr = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    wire = arr[..., ::-1] if encoding == "bgr8" else arr
    rows = np.full((height, width * channels + pad), 0xEE, dtype=np.uint8)
    rows[:, : width * channels] = wire.reshape(height, width * channels)
    msg = make_msg(encoding, width, height, width * channels + pad, rows.tobytes())
    out = image_to_array(msg)
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, arr)


def test_bytes_and_list_data_accepted(rng):
    arr = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    msg = make_msg("rgb8", 4, 3, 12, arr.tobytes())
    msg._data = arr.tobytes()  # bypass the setter: some callers hand us plain bytes
    np.testing.assert_array_equal(image_to_array(msg), arr)
    msg._data = list(arr.tobytes())
    np.testing.assert_array_equal(image_to_array(msg), arr)


def test_result_does_not_alias_message(rng):
    arr = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    msg = array_to_image(arr, "rgb8")
    out = image_to_array(msg)
    out[...] = 0
    assert bytes(msg.data) == arr.tobytes()


# --- tensors ---------------------------------------------------------------


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera_optical_frame", "é"])
@pytest.mark.parametrize("encoding,width,height,pad,bigendian", [
    ("rgb8", 1, 1, 0, 0), ("mono8", 5, 3, 1, 1), ("bgr8", 640, 480, 0, 0), ("16UC1", 7, 2, 3, 0)])
def test_an_image_read_from_its_bytes_equals_rclpys_and_a_short_one_says_so(rng, frame_id, encoding, width, height,
                                                                             pad, bigendian):
    """Every string length pads the fields after it differently; the pixels are a view, not a copy."""
    from rclpy.serialization import deserialize_message, serialize_message

    step = width * (1 if encoding == "mono8" else 3) + pad
    msg = make_msg(encoding, width, height, step, rng.integers(0, 256, step * height, dtype=np.uint8).tobytes())
    msg.is_bigendian = bigendian
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = -3, 999_999_999
    raw = serialize_message(msg)
    view, ref = image_view(raw), deserialize_message(raw, Image)
    assert (view.header, view.height, view.width, view.encoding, view.is_bigendian, view.step) == (
        ref.header, ref.height, ref.width, ref.encoding, ref.is_bigendian, ref.step)
    assert bytes(view.data) == bytes(ref.data) and view.data.obj is raw
    if encoding in ("rgb8", "bgr8", "mono8"):
        np.testing.assert_array_equal(image_to_array(view), image_to_array(ref))
    for cut in (3, 10, len(raw) // 2, len(raw) - 1):
        with pytest.raises(ValueError, match="too few|runs past the end|encapsulation"):
            image_view(raw[:cut])
    with pytest.raises(ValueError, match="not little-endian plain CDR"):
        image_view(b"\x00\x00" + raw[2:])  # big-endian: rclpy reads those (shared_input falls back)


def test_image_to_tensor_shape_dtype_and_normalisation():
    colour = (200, 100, 50)
    arr = np.empty((48, 64, 3), dtype=np.uint8)
    arr[...] = colour
    tensor = image_to_tensor(array_to_image(arr, "rgb8"), (32, 40))
    assert tensor.shape == (1, 3, 32, 40)
    assert tensor.dtype == torch.float32
    expected = [(v / 255 - m) / s for v, m, s in zip(colour, IMAGENET_MEAN, IMAGENET_STD)]
    np.testing.assert_allclose(tensor[0, :, 10, 20].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_image_to_tensor_custom_mean_std_and_channel_order():
    arr = np.zeros((4, 4, 3), dtype=np.uint8)
    arr[..., 0] = 255  # pure red in RGB
    msg = make_msg("bgr8", 4, 4, 12, arr[..., ::-1].tobytes())
    tensor = image_to_tensor(msg, (8, 8), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    np.testing.assert_allclose(tensor[0, :, 3, 3].numpy(), [1.0, 0.0, 0.0], atol=1e-6)


def test_mono8_tensor_replicated_to_three_channels():
    msg = make_msg("mono8", 10, 6, 10, bytes([128]) * 60)
    tensor = image_to_tensor(msg, (5, 7))
    assert tensor.shape == (1, 3, 5, 7)
    expected = [(128 / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    np.testing.assert_allclose(tensor[0, :, 2, 3].numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(480, 640, 3), (47, 61, 3), (30, 40, 1), (30, 40)])
@pytest.mark.parametrize("bgr", [False, True])
@pytest.mark.parametrize("letterbox", [False, True])
def test_the_compiled_conversion_equals_the_definition(shape, bgr, letterbox):
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    rgb = np.repeat(arr.reshape(*shape[:2], 1), 3, axis=2) if arr.ndim == 2 or shape[2] == 1 else arr
    mean, std = np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.3, 0.7])
    for size in [(64, 80), (320, 320), (30, 40)]:
        got = ModelInput(size, mean=mean, std=std, bgr=bgr, letterbox=letterbox)(arr)
        assert got.shape == (1, 3, *size) and got.dtype == torch.float32
        if letterbox:  # scaled to fit, centred on grey
            f = conversions.fit(rgb.shape[:2], size, True)
            fitted = np.full((*size, 3), conversions.LETTERBOX_FILL, np.uint8)
            f.crop(fitted, size)[...] = cv2.resize(rgb, (f.width, f.height), interpolation=cv2.INTER_LINEAR)
        else:
            fitted = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        channels = fitted[:, :, ::-1] if bgr else fitted
        expected = ((channels / 255.0 - mean) / std).transpose(2, 0, 1)[None]
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=4e-6)
        if hasattr(cv2.dnn, "blobFromImageWithParams"):  # OpenCV's one call, same arithmetic: same bits
            blob = cv2.dnn.Image2BlobParams()
            blob.size, blob.swapRB, blob.ddepth = (size[1], size[0]), bgr, cv2.CV_32F
            blob.scalefactor = (*(1.0 / (255.0 * std.astype(np.float32))).tolist(), 0.0)
            blob.mean = (*(255.0 * mean.astype(np.float32)).tolist(), 0.0)
            np.testing.assert_array_equal(got.numpy(), cv2.dnn.blobFromImageWithParams(fitted, blob))


# --- bad input -------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["16UC1", "yuv422"])
def test_unsupported_encoding(encoding):
    msg = make_msg(encoding, 2, 2, 4, bytes(8))
    with pytest.raises(ImageError, match=rf"unsupported encoding '{encoding}'; supported: rgb8, bgr8, mono8"):
        image_to_array(msg)


def test_step_smaller_than_row():
    msg = make_msg("rgb8", 640, 480, 1900, bytes(1900 * 480))
    with pytest.raises(ImageError, match=r"step 1900 is smaller than width\*channels = 1920 for rgb8 640x480"):
        image_to_array(msg)


def test_truncated_data():
    msg = make_msg("rgb8", 640, 480, 1920, bytes(921000))
    with pytest.raises(ImageError, match=r"truncated: 921000 bytes, expected step\*height = 921600"):
        image_to_array(msg)


def test_data_longer_than_step_times_height():
    msg = make_msg("mono8", 4, 3, 4, bytes(13))
    with pytest.raises(ImageError, match=r"size mismatch: 13 bytes, expected step\*height = 12"):
        image_to_array(msg)


@pytest.mark.parametrize(("width", "height"), [(0, 480), (640, 0)])
def test_zero_size(width, height):
    msg = make_msg("rgb8", width, height, width * 3, b"")
    with pytest.raises(ImageError, match=rf"zero size \({width}x{height}\)"):
        image_to_array(msg)


def test_image_error_is_value_error():
    assert issubclass(ImageError, ValueError)


def test_array_to_image_rejects_bad_input():
    with pytest.raises(ImageError, match="unsupported encoding"):
        array_to_image(np.zeros((2, 2, 3), np.uint8), "rgba8")
    with pytest.raises(ImageError, match="does not fit rgb8"):
        array_to_image(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ImageError, match="uint8"):
        array_to_image(np.zeros((2, 2, 3), np.float32), "rgb8")


# --- masks -----------------------------------------------------------------


@pytest.mark.parametrize("as_tensor", [False, True])
def test_mask_to_image_preserves_values_and_shape(rng, as_tensor):
    mask = rng.integers(0, 256, size=(5, 8), dtype=np.int64)
    mask[0, 0], mask[0, 1] = 0, 255
    header = Header(frame_id="mask")
    msg = mask_to_image(torch.from_numpy(mask) if as_tensor else mask, header)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("mono8", 5, 8, 8)
    assert msg.header.frame_id == "mask"
    np.testing.assert_array_equal(image_to_array(msg)[..., 0], mask)


@pytest.mark.parametrize("bad", [256, -1])
def test_mask_out_of_range_rejected(bad):
    mask = np.zeros((3, 3), dtype=np.int32)
    mask[1, 1] = bad
    with pytest.raises(ImageError, match=rf"0\.\.255.*{bad}"):
        mask_to_image(mask)
    with pytest.raises(ImageError, match=r"0\.\.255"):
        mask_to_image(torch.from_numpy(mask))


def test_mask_float_rejected():
    with pytest.raises(ImageError, match="integer dtype"):
        mask_to_image(np.zeros((2, 2), dtype=np.float32))


def test_shared_conversions_make_each_key_once_and_pass_errors_to_every_caller():
    import threading

    shared, made, start = SharedConversions(keep=2), [], threading.Barrier(4)

    def slow(key):
        def make():
            made.append(key)
            return torch.full((1,), float(key))
        return make

    got = []

    def ask():
        start.wait()
        got.append(shared.get(1, slow(1)))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [1] and sorted(m for _, m in got) == [False, False, False, True]
    assert all(x is got[0][0] for x, _ in got)  # the one tensor, not copies
    shared.get(2, slow(2))
    shared.get(3, slow(3))  # keeps the newest two: key 1 is forgotten
    assert shared.get(1, slow(1))[1] and made == [1, 2, 3, 1]

    def broken():
        raise ImageError("bad pixels")

    with pytest.raises(ImageError, match="bad pixels"):
        shared.get(9, broken)
    with pytest.raises(ImageError, match="bad pixels"):
        shared.get(9, slow(9))  # the same image: the same error, not a second try


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_images_decode_and_bad_payloads_name_the_problem(fmt):
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, :16] = (200, 40, 10)  # a red left half: a colour swap would show
    msg = array_to_compressed(rgb, fmt)
    assert compressed_format(msg) == fmt and fmt in msg.format
    back = decode_compressed(msg)
    assert back.shape == (24, 32, 3) and (fmt == "jpeg" or np.array_equal(back, rgb))
    assert np.abs(back[4:20, 2:12].astype(int) - (200, 40, 10)).max() <= 12  # red, away from the edge
    msg.format = "tiff"
    with pytest.raises(ImageError, match="names no one of jpeg, png"):
        compressed_format(msg)
    msg.format = "png" if fmt == "jpeg" else "jpeg"
    with pytest.raises(ImageError, match="do not start as one"):
        compressed_format(msg)
    msg.format = fmt
    msg.data = bytes(msg.data)[:16]  # starts right, then ends
    with pytest.raises(ImageError, match="does not decode"):
        decode_compressed(msg)
