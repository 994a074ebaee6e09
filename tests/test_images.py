import base64
import io

import numpy as np
import pytest
from PIL import Image

from mtl.images import ImageDecodeError, decode_any, decode_bytes, square_resize


def _png(mode: str, size=(30, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color=128 if mode == "L" else None).save(buf, format="PNG")
    return buf.getvalue()


def test_real_jpeg_decodes_as_rgb(utkface_dir, real_names):
    data = (utkface_dir / real_names[0]).read_bytes()
    rgb = decode_bytes(data)
    assert rgb.shape == (200, 200, 3) and rgb.dtype == np.uint8
    assert np.array_equal(decode_any(base64.b64encode(data).decode()), rgb)
    assert np.array_equal(decode_any(data), rgb)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA"])
def test_other_modes_become_rgb(mode):
    assert decode_bytes(_png(mode)).shape == (20, 30, 3)


@pytest.mark.parametrize("value, message", [
    ("not base64!!", "not valid base64"),
    (base64.b64encode(b"hello world").decode(), "not a recognised image"),
    (b"", "empty"),
    (12345, "unsupported image value of type int"),
    (np.zeros((4, 4), dtype=np.float32), "must be uint8"),
    (np.zeros((0, 4, 3), dtype=np.uint8), "no pixels"),
    (np.zeros((4, 4, 2), dtype=np.uint8), "shape"),
])
def test_bad_values_say_why(value, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_any(value)


def test_truncated_jpeg_is_rejected(utkface_dir, real_names):
    data = (utkface_dir / real_names[1]).read_bytes()
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        decode_bytes(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    buf = io.BytesIO()
    Image.new("L", (10000, 5000)).save(buf, format="PNG")  # 50 Mpx, compresses to a few KB
    with pytest.raises(ImageDecodeError, match="exceeds (the )?limit"):
        decode_bytes(buf.getvalue())


def test_square_resize_center_crops():
    img = np.zeros((100, 200, 3), dtype=np.uint8)
    img[:, 50:150] = 255  # the centre square is white
    out = square_resize(img, 32)
    assert out.shape == (32, 32, 3) and out.min() == 255
