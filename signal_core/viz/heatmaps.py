"""SIM's token scores drawn as heatmaps over an image, and short labels on drawings (numpy, OpenCV, PIL).

SIM keeps the top-k1 patches of each modality's own class-token attention (the *intra-modal* score)
and the top-k2 of the other modalities' queries (the *inter-modal* score, the attention a patch
receives from them); :meth:`signal_core.SignalModel.explain` returns both per patch. Here each map is
stretched from its own minimum to its maximum (SIM keeps the top k, so only the order matters; the
softmax scores of a small model are often nearly flat), upsampled bilinearly over the image (the
patch grid's cell centres at the patch centres), coloured from dark purple (0) through red to pale
yellow (the maximum) and blended over a grey version of the image. All functions take and return
[H, W, 3] uint8 RGB arrays and never change their input.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..utils.optional import require
from .overlays import overlay_size, resize_for_overlay

cv2 = require("cv2", "the heatmap drawings (signal_core.viz)")

# An inferno-like colour ramp: (position, RGB) anchors, linearly interpolated.
HEAT_ANCHORS = ((0.0, (0, 0, 4)), (0.25, (87, 16, 110)), (0.5, (188, 55, 84)), (0.75, (249, 142, 9)),
                (1.0, (252, 255, 164)))
HEAT_ALPHA = 0.65  # weight of the heat colour over the grey image
PANEL_GAP = 4  # pixels between the intra and inter panels


def heat_colours(values: np.ndarray) -> np.ndarray:
    """[...] values in [0, 1] (clipped) -> [..., 3] uint8 colours of the ramp (256 levels)."""
    levels = (np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0) * 255).round().astype(np.uint8)
    return _heat_table()[levels]


@lru_cache(maxsize=1)
def _heat_table() -> np.ndarray:
    """[256, 3] uint8: the ramp at 256 evenly spaced values."""
    positions = np.array([p for p, _ in HEAT_ANCHORS])
    colours = np.array([c for _, c in HEAT_ANCHORS], dtype=np.float64)  # [A, 3]
    values = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(values, positions, colours[:, c]) for c in range(3)], axis=-1).round().astype(np.uint8)


def upsample_scores(scores: np.ndarray, grid_size: tuple[int, int], hw: tuple[int, int]) -> np.ndarray:
    """[h * w] patch scores (row-major) -> [H, W] float32 by bilinear interpolation between patch centres."""
    gh, gw = grid_size
    grid = np.asarray(scores, dtype=np.float32).reshape(gh, gw)
    return cv2.resize(grid, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


def score_heatmap(image: np.ndarray, grid_size: tuple[int, int], scores: np.ndarray | None,
                  title: str | None = None) -> np.ndarray:
    """One score map over ``image`` ([H, W, 3] uint8, e.g. from :func:`resize_for_overlay`).

    Args:
        scores: [h * w] patch scores; stretched here from their minimum (dark) to their maximum
            (bright), as the selection only depends on their order (all equal: dark).
        title: written in the bottom-left corner (the page's image labels cover the top-left one).
    """
    out = image.copy()
    if scores is None:
        return annotate(out, title) if title else out
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    low, span = float(scores.min()), float(np.ptp(scores))
    stretched = (scores - low) * (255 / span) if span > 0 else np.zeros_like(scores)  # min -> 0, max -> 255
    heat = upsample_scores(stretched, grid_size, out.shape[:2])
    levels = cv2.convertScaleAbs(heat)  # [H, W] uint8: rounded, 0..255
    coloured = cv2.LUT(cv2.cvtColor(levels, cv2.COLOR_GRAY2RGB), _heat_table()[None])  # the ramp's colours
    grey = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    out = cv2.addWeighted(grey, 1 - HEAT_ALPHA, coloured, HEAT_ALPHA, 0.0)
    return annotate(out, title) if title else out


def score_maps_overlay(image: np.ndarray | None, grid_size: tuple[int, int], image_size: tuple[int, int],
                       intra_scores=None, inter_scores=None) -> np.ndarray:
    """The intra- and inter-modal score maps of one modality side by side, each over the image.

    Args:
        image: the modality's image (any size; None: a grey "missing" canvas).
        intra_scores, inter_scores: [L] scores (numpy or torch), as from ``explain``.

    Returns:
        [H', 2 W' + PANEL_GAP, 3] uint8, (H', W') = :func:`overlay_size` of ``image_size``.
    """
    canvas = resize_for_overlay(image, overlay_size(image_size))
    left = score_heatmap(canvas, grid_size, _np(intra_scores), "intra")
    right = score_heatmap(canvas, grid_size, _np(inter_scores), "inter")
    gap = np.full((canvas.shape[0], PANEL_GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def annotate(image: np.ndarray, text: str, where: str = "bottom") -> np.ndarray:
    """``text`` in white on a dark box in the top-left or bottom-left corner of a copy of ``image``."""
    if where not in ("top", "bottom"):
        raise ValueError(f"where must be 'top' or 'bottom', got {where!r}")
    out = np.array(image, dtype=np.uint8)  # a copy
    label = _label(text, max(11, out.shape[0] // 24))  # [box_h + 1, box_w, 3]
    if where == "top":
        patch = label[:out.shape[0], :out.shape[1]]
        out[:patch.shape[0], :patch.shape[1]] = patch
    else:  # the box's last row is the image's last row (the label's extra row falls outside)
        rows = label.shape[0] - 1
        patch = label[max(0, rows - out.shape[0]):rows, :out.shape[1]]
        out[out.shape[0] - patch.shape[0]:, :patch.shape[1]] = patch
    return out


@lru_cache(maxsize=64)
def _label(text: str, size: int) -> np.ndarray:
    """The box of :func:`annotate`: ``text`` in white at ``size`` px on black (drawn once per text and size)."""
    font = _font(size)
    _, _, x1, y1 = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
    pad = 3
    box = Image.new("RGB", (x1 + 2 * pad + 1, y1 + 2 * pad + 1), (0, 0, 0))
    ImageDraw.Draw(box).text((pad, pad), text, fill=(255, 255, 255), font=font)
    label = np.asarray(box).copy()
    label.flags.writeable = False  # shared by every call
    return label


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (loaded once per size)."""
    return ImageFont.load_default(size=size)


def heat_legend_html() -> str:
    """An HTML legend for the heatmap colours."""
    stops = ", ".join(f"rgb{c} {p * 100:.0f}%" for p, c in HEAT_ANCHORS)
    bar = (f'<span style="display:inline-block;width:8em;height:0.9em;margin:0 0.4em;vertical-align:middle;'
           f'border:1px solid #888;background:linear-gradient(to right, {stops})"></span>')
    return (f'<div class="signal-legend">SIM scores: left <b>intra</b> (the modality\'s own class token), right '
            f'<b>inter</b> (the other modalities\' queries); low{bar}high, each map stretched from its lowest '
            'to its highest patch</div>')


def _np(value):
    """A torch tensor or array as numpy (None stays None)."""
    if value is None:
        return None
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
