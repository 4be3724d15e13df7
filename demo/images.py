"""Robust image decoding for the demo: any file a user may upload becomes an 8-bit RGB array.

Handles grayscale, RGBA / LA (alpha composited on black), palette, 16-bit and 32-bit integer or
float images (stretched to 8 bits by their min / max), multi-frame files (first frame), EXIF
rotation, and huge images (downscaled while decoding where the format allows it, JPEG, else right
after; PIL refuses more than about 179 Mpixels). Anything that is not a readable image raises
:class:`ImageDecodeError` with a message meant for the user; no other exception escapes
:func:`decode_image`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile, ImageOps

ImageFile.LOAD_TRUNCATED_IMAGES = True  # a truncated JPEG still shows what it has (as the datasets)
# Between ~89 and ~179 Mpixels PIL only warns; we downscale such images right away anyway.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

MAX_SIDE = 2048  # images are downscaled to at most this many pixels per side right after decoding
ImageSource = Union[str, Path, np.ndarray, Image.Image]


class ImageDecodeError(ValueError):
    """The input is not an image we can read; the message is shown to the user as is."""


def decode_image(source: ImageSource, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode a file path, PIL image or array into an ``[H, W, 3]`` uint8 RGB array.

    Args:
        source: a path to an image file, a PIL image or a numpy array (HxW, HxWx1/3/4; any dtype).
        max_side: downscale (keeping the aspect ratio) so that no side exceeds this.

    Raises:
        ImageDecodeError: the file is missing, not an image, or broken.
    """
    if isinstance(source, np.ndarray):
        return _limit_size(array_to_rgb8(source), max_side)
    if isinstance(source, Image.Image):
        return _limit_size(pil_to_rgb8(source, max_side), max_side)
    path = Path(source)
    name = path.name or str(source)
    if not path.is_file():
        raise ImageDecodeError(f"'{name}' does not exist or is not a file.")
    try:
        with Image.open(path) as img:
            return _limit_size(pil_to_rgb8(img, max_side), max_side)
    except Image.DecompressionBombError:
        raise ImageDecodeError(f"'{name}' is too large (PIL's limit is {2 * (Image.MAX_IMAGE_PIXELS or 0):,} "
                               "pixels): downscale it first.") from None
    except ImageDecodeError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageDecodeError(f"'{name}' is not an image file (or not a format this demo can read: "
                               "use PNG, JPEG, BMP, TIFF or WebP).") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure becomes a user message
        raise ImageDecodeError(f"'{name}' could not be decoded ({exc.__class__.__name__}: {exc}).") from None


def pil_to_rgb8(img: Image.Image, max_side: int = MAX_SIDE) -> np.ndarray:
    """A PIL image (any mode) as an ``[H, W, 3]`` uint8 RGB array, downscaled early when large."""
    if img.format == "JPEG" and max(img.size) > max_side:
        img.draft("RGB", (max_side, max_side))  # DCT-domain downscale: cheap decode of huge JPEGs
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop us
        pass
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        img = img.convert("I")
    if max(img.size) > max_side:
        img = img.copy() if img.mode in ("I", "F") else img
        scale = max_side / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        resample = Image.Resampling.NEAREST if img.mode in ("P", "1") else Image.Resampling.BILINEAR
        img = img.resize(size, resample, reducing_gap=2.0 if img.mode not in ("I", "F") else None)
    if img.mode in ("I", "F"):
        return array_to_rgb8(np.asarray(img))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return array_to_rgb8(np.asarray(img.convert("RGBA")))
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def array_to_rgb8(array: np.ndarray) -> np.ndarray:
    """Any numeric image array (HxW, HxWx1/2/3/4) as ``[H, W, 3]`` uint8.

    uint8 is kept; other dtypes are stretched to 0..255 by their min / max (constant images become
    black); a 4th (alpha) channel is composited on black, a 2nd (grey + alpha) likewise.
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)) or a.size == 0:
        raise ImageDecodeError(f"an image array must be HxW or HxWxC with C in 1..4, got shape {a.shape}.")
    alpha = None
    if a.ndim == 3 and a.shape[2] in (2, 4):
        alpha, a = a[:, :, -1], a[:, :, :-1]
        if a.shape[2] == 1:
            a = a[:, :, 0]
    rgb = _stretch_to_uint8(a)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if alpha is not None:
        weight = _stretch_to_uint8(alpha, full_range=True).astype(np.float32) / 255.0
        rgb = (rgb.astype(np.float32) * weight[:, :, None]).round().astype(np.uint8)
    return np.ascontiguousarray(rgb)


def _stretch_to_uint8(a: np.ndarray, full_range: bool = False) -> np.ndarray:
    """uint8 as is; bool to 0/255; other types by min / max (``full_range``: by the dtype's range)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if full_range and np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        return ((a.astype(np.float64) - info.min) / (info.max - info.min) * 255).round().astype(np.uint8)
    f = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(f.min()), float(f.max())
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return ((f - lo) * (255.0 / (hi - lo))).round().clip(0, 255).astype(np.uint8)


def _limit_size(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale an RGB array so that its longest side is at most ``max_side``."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
