"""What image-level registration did (``model.registration``), drawn per moved modality (NIR, TIR).

Each panel shows RGB's edges (green) and the modality's edges (magenta) over the dimmed RGB image: where
they meet they add up to white, so aligned edges are white and a misaligned modality shows green and
magenta side by side. :func:`registration_panels` puts the unregistered modality ("before", with an
arrow of the displacement the registration found, drawn at its true length: factor 1) beside the
registered one ("after", the modality moved by that displacement, as the model's encoder sees it).
The edges are the registration's own Sobel gradients (:func:`signal_core.model.registration.gradients`).
Images are [H, W, 3] uint8 at the drawing size (:func:`signal_core.viz.overlay_size` of the model's
input); displacements are (x, y) pixels of the model's input, ``modality(p + t) = RGB(p)``.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..model.registration import gradients, translate
from .heatmaps import PANEL_GAP, annotate
from .overlays import _arrow, _as_rgb_uint8

RGB_EDGE_COLOUR = (0, 230, 118)  # green
MOVED_EDGE_COLOUR = (255, 64, 255)  # magenta: with green, white where the edges meet
DISPLACEMENT_COLOUR = (255, 214, 0)  # yellow: the displacement registration found
BASE_BRIGHTNESS = 0.35  # the RGB image under the edges, dimmed
EDGE_QUANTILE = 0.98  # an image's edge magnitude is shown relative to this quantile of its own


def edge_magnitude(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 -> [H, W] float32 in [0, 1]: the summed Sobel gradient magnitude over the channels,
    relative to its :data:`EDGE_QUANTILE` quantile (a flat image: all 0)."""
    pixels = torch.from_numpy(_as_rgb_uint8(image).copy()).permute(2, 0, 1)[None].float() / 255
    gx, gy = gradients(pixels)
    magnitude = (gx ** 2 + gy ** 2).sqrt().sum(dim=1)[0].numpy()
    top = float(np.quantile(magnitude, EDGE_QUANTILE))
    if top <= 1e-6:
        return np.zeros(magnitude.shape, np.float32)
    return np.clip(magnitude / top, 0, 1).astype(np.float32)


def registered_image(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image`` moved as the registration moves it: ``out(p) = image(p + shift)`` (shift (x, y) in this
    image's pixels; bilinear, reflection border; a zero shift returns an exact copy)."""
    pixels = torch.from_numpy(_as_rgb_uint8(image).copy()).permute(2, 0, 1)[None].float()
    moved = translate(pixels, torch.tensor([shift], dtype=torch.float32))
    return moved[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def edge_overlay(rgb: np.ndarray, moved: np.ndarray | None) -> np.ndarray:
    """RGB's edges (green) and ``moved``'s (magenta; None: RGB's only) over the dimmed grey RGB image."""
    rgb = _as_rgb_uint8(rgb)
    grey = rgb.astype(np.float32).mean(axis=-1, keepdims=True) * BASE_BRIGHTNESS
    out = grey + edge_magnitude(rgb)[..., None] * np.float32(RGB_EDGE_COLOUR)
    if moved is not None:
        out = out + edge_magnitude(moved)[..., None] * np.float32(MOVED_EDGE_COLOUR)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def displacement_arrow(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """An arrow from the image centre to the centre + ``shift`` ((x, y) in this image's pixels, its true
    length), in :data:`DISPLACEMENT_COLOUR`; a dot where the shift is under half a pixel."""
    pil = Image.fromarray(_as_rgb_uint8(image).copy())
    draw = ImageDraw.Draw(pil)
    h, w = image.shape[:2]
    x0, y0 = w / 2, h / 2
    thickness, radius = max(1, h // 120), max(2, h // 100)
    _arrow(draw, (x0, y0), (x0 + shift[0], y0 + shift[1]), thickness, head=max(4.0, 2.5 * radius),
           colour=DISPLACEMENT_COLOUR)
    draw.ellipse((x0 - radius, y0 - radius, x0 + radius, y0 + radius), fill=DISPLACEMENT_COLOUR, outline=(0, 0, 0))
    return np.asarray(pil).copy()


def registration_panels(rgb: np.ndarray, moved: np.ndarray | None, displacement, image_size: tuple[int, int],
                        label: str) -> np.ndarray:
    """The modality's edges over RGB before (with the displacement's arrow) and after registration.

    Args:
        rgb, moved: [H, W, 3] uint8 at the drawing size (``moved`` None: a missing modality, RGB's edges only).
        displacement: (x, y) pixels of the model's ``image_size`` input the registration found (numpy or torch).
        label: the modality's name, written on the panels.

    Returns:
        [H, 2 W + PANEL_GAP, 3] uint8: before | after.
    """
    h, w = rgb.shape[:2]
    dx, dy = (float(v) for v in np.asarray(_np(displacement), dtype=np.float64).reshape(2))
    shift = (dx * w / image_size[1], dy * h / image_size[0])  # in pixels of the drawing
    if moved is None:
        before = after = annotate(edge_overlay(rgb, None), f"{label} missing")
    else:
        before = annotate(displacement_arrow(edge_overlay(rgb, moved), shift),
                          f"{label} before: {dx:+.1f}, {dy:+.1f} px")
        after = annotate(edge_overlay(rgb, registered_image(moved, shift)), f"{label} registered")
    gap = np.full((h, PANEL_GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([before, gap, after], axis=1)


def reference_panel(rgb: np.ndarray) -> np.ndarray:
    """RGB's edges over itself: the reference the other modalities are registered to."""
    return annotate(edge_overlay(rgb, None), "RGB: the reference")


def legend_html() -> str:
    """An HTML legend for the registration drawings' colours."""
    def swatch(colour, label):
        return (f'<span style="display:inline-block;width:0.9em;height:0.9em;margin:0 0.3em 0 1em;'
                f'vertical-align:middle;border:1px solid #888;background:rgb{colour}"></span>{label}')

    return ('<div class="signal-legend">Registration: edges of' + swatch(RGB_EDGE_COLOUR, "RGB")
            + swatch(MOVED_EDGE_COLOUR, "NIR / TIR") + swatch((255, 255, 255), "both (aligned)")
            + swatch(DISPLACEMENT_COLOUR, "displacement found (true length)") + "</div>")


def _np(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value
