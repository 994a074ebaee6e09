"""Image decoding and the one resize used by training, evaluation and serving."""

from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # refuse larger images (decompression bombs) before decoding them
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageDecodeError(ValueError):
    """Input that is not a usable image; the message says why."""


def decode_bytes(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode JPEG/PNG/... bytes to an HxWx3 uint8 RGB array (grayscale and RGBA are converted)."""
    if not data:
        raise ImageDecodeError("empty image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageDecodeError(f"image of {width}x{height} pixels exceeds the limit of {max_pixels}")
                if width == 0 or height == 0:
                    raise ImageDecodeError(f"image has no pixels ({width}x{height})")
                img.load()
                return to_rgb(img)
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"image too large: {exc}") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("bytes are not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from None


def to_rgb(img: Image.Image) -> np.ndarray:
    """PIL image in any mode to HxWx3 uint8 RGB; transparency is composited on white."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_any(value: object) -> np.ndarray:
    """Decode a base64 string, raw bytes or an HxW(x1/3/4) uint8 array into RGB uint8."""
    if isinstance(value, np.ndarray):
        return array_to_rgb(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(value))
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("data:") and "," in text:  # data URL
            text = text.split(",", 1)[1]
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ImageDecodeError("string is not valid base64") from None
        return decode_bytes(raw)
    if isinstance(value, list):
        return array_to_rgb(np.asarray(value))
    raise ImageDecodeError(
        f"unsupported image value of type {type(value).__name__}; "
        "expected base64 string, bytes or an HxWx3 uint8 array"
    )


def array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """Validate an image array and return it as HxWx3 uint8."""
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.integer) and arr.size and arr.min() >= 0 and arr.max() <= 255:
            arr = arr.astype(np.uint8)
        else:
            raise ImageDecodeError(f"image array must be uint8 (0-255), got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageDecodeError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageDecodeError(f"image array has no pixels, shape {arr.shape}")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ImageDecodeError(f"image array of {arr.shape[1]}x{arr.shape[0]} pixels exceeds the limit")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = to_rgb(Image.fromarray(arr, mode="RGBA"))
    return np.ascontiguousarray(arr)


def square_resize(rgb: np.ndarray, size: int, crop: float = 1.0) -> np.ndarray:
    """Centre-crop a square (``crop`` x the shorter side) and resize it to ``size`` x ``size``."""
    if not 0 < crop <= 1:
        raise ValueError(f"crop must be in (0, 1], got {crop}")
    height, width = rgb.shape[:2]
    side = max(1, round(min(height, width) * crop))
    top, left = (height - side) // 2, (width - side) // 2
    crop = rgb[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(crop)
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None))
