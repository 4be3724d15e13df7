"""The one image decoder of every entry point (datasets, train.extract, train.evaluate, the demo):
any image file becomes an 8-bit RGB array, the same way everywhere.

Handles grayscale, RGBA / LA (alpha composited on black), palette, 16-bit and 32-bit integer or
float images (stretched to 8 bits by their min / max), multi-frame files (first frame), EXIF
rotation, and large images (downscaled while decoding where the format allows it, JPEG, else right
after). An image of more than :data:`MAX_PIXELS` pixels is refused from its header, before any pixel
is decoded (a 657 KB PNG can hold 13000 x 13000 pixels, 2 GB decoded). Anything that is not a
readable image raises :class:`ImageDecodeError` with a message meant for the user; no other
exception escapes :func:`decode_image`.

Only the formats cameras and datasets write are opened (:data:`FORMATS`: JPEG, PNG, BMP, TIFF, WebP
and the netpbm PPM / PGM / PBM): PIL would otherwise open whatever it recognises, EPS included, whose
plugin runs Ghostscript on the file. Any other file, of any extension, is refused in one line by
:func:`open_image`, the one place that opens an image file (the decoder, the demo's upload checks).
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps

from ..utils.messages import reason, shown

MAX_SIDE = 2048  # images are downscaled to at most this many pixels per side right after decoding
MAX_PIXELS = 40_000_000  # larger images are refused (checked from the header, before decoding)

ImageFile.LOAD_TRUNCATED_IMAGES = True  # a truncated JPEG still shows what it has (as the datasets)
# PIL itself (also inside gradio) raises DecompressionBombError above 2 x MAX_IMAGE_PIXELS when it
# opens a file; between 1x and 2x it only warns, and decode_image refuses those itself.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
ImageSource = str | Path | np.ndarray | Image.Image
# PIL's names of the formats opened (JPEG includes the multi-picture MPO of many cameras; PPM also reads PGM / PBM)
FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "PPM")
FORMATS_SHOWN = "JPEG, PNG, BMP, TIFF, WebP or PPM / PGM"


class ImageDecodeError(ValueError):
    """The input is not an image we can read; the message is shown to the user as is."""


def decode_image(source: ImageSource, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a file path, PIL image or array into an ``[H, W, 3]`` uint8 RGB array.

    Args:
        source: a path to an image file, a PIL image or a numpy array (HxW, HxWx1/3/4; any dtype).
        max_side: downscale (keeping the aspect ratio) so that no side exceeds this.
        max_pixels: refuse images with more pixels than this (read from the header).

    Raises:
        ImageDecodeError: the file is missing, not an image, broken, or over ``max_pixels``.
    """
    if isinstance(source, np.ndarray):
        check_pixel_count(source.shape[1::-1] if source.ndim >= 2 else (source.size, 1), "the array", max_pixels)
        return _limit_size(array_to_rgb8(source), max_side)
    if isinstance(source, Image.Image):
        check_pixel_count(source.size, "the image", max_pixels)
        return _limit_size(pil_to_rgb8(source, max_side), max_side)
    if not isinstance(source, (str, Path)):
        raise ImageDecodeError(f"not an image (got {type(source).__name__}).")
    path = Path(source)
    name = shown(path.name or str(source))
    if not path.is_file():
        raise ImageDecodeError(f"'{name}' does not exist or is not a file.")
    try:
        with open_image(path, f"'{name}'", max_pixels) as img:  # reads the header only
            return _limit_size(pil_to_rgb8(img, max_side), max_side)
    except ImageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure becomes a user message
        raise ImageDecodeError(f"'{name}' could not be decoded ({reason(exc)}).") from None


@contextmanager
def open_image(source: str | Path | BinaryIO, what: str, max_pixels: int = MAX_PIXELS) -> Iterator[Image.Image]:
    """``PIL.Image.open`` of one of :data:`FORMATS` only, its pixel count checked from the header.

    Args:
        source: a file path or a binary file object.
        what: how messages name it, e.g. "'a.png'".

    Raises:
        ImageDecodeError: not an image, another format, or over ``max_pixels``.
    """
    try:
        img = Image.open(source, formats=FORMATS)
    except Image.DecompressionBombError as exc:  # PIL's own check on open (over 2 x MAX_IMAGE_PIXELS)
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(found[1]) / 1e6:.0f} Mpx" if found else f"more than {2 * MAX_PIXELS / 1e6:.0f} Mpx"
        raise ImageDecodeError(f"{what} has {count}, over the limit of {max_pixels / 1e6:.0f} Mpx: "
                               "downscale it first.") from None
    except Image.UnidentifiedImageError:
        raise ImageDecodeError(f"{what} is not an image file in a format read here ({FORMATS_SHOWN}): convert it to "
                               "PNG or JPEG.") from None
    except OSError as exc:
        raise ImageDecodeError(f"{what} could not be read ({reason(exc)}).") from None
    with img:
        check_pixel_count(img.size, what, max_pixels)
        yield img


def check_pixel_count(size: tuple[int, int], what: str, max_pixels: int = MAX_PIXELS) -> None:
    """Raise :class:`ImageDecodeError` when ``size`` (W, H) has more than ``max_pixels`` pixels."""
    width, height = int(size[0]), int(size[1])
    if width * height > max_pixels:
        raise ImageDecodeError(f"{what} has {width * height / 1e6:.0f} Mpx ({width} x {height}), over the "
                               f"limit of {max_pixels / 1e6:.0f} Mpx: downscale it first.")


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
