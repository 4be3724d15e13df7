"""Drawing what the model looked at, on top of an input image.

* SIM token selection: the patches SIM passed on, tinted by why they were kept: by the modality's
  own class token (intra-modal selection), by the other modalities' queries (inter-modal
  selection), or by both.
* LAM deformable sampling: each reference point (dot) with an arrow to where it sampled.

Coordinates from :meth:`signal_core.SignalModel.explain` are in [-1, 1] (x, y) over the patch grid
with ``align_corners=True``: -1 is the centre of the first patch, +1 the centre of the last.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

# RGB colours (the legend in the page uses the same values).
INTRA_COLOUR = (0, 200, 83)  # green: intra-modal selection only
INTER_COLOUR = (41, 121, 255)  # blue: inter-modal selection only
BOTH_COLOUR = (255, 196, 0)  # amber: both
REFERENCE_COLOUR = (255, 255, 255)
ARROW_COLOUR = (255, 23, 68)  # red
TINT_ALPHA = 0.45
MIN_OVERLAY_HEIGHT = 384


def overlay_size(image_size: tuple[int, int], min_height: int = MIN_OVERLAY_HEIGHT) -> tuple[int, int]:
    """(H, W) of the overlay canvas: the model's input size scaled up by an integer to >= min_height."""
    h, w = image_size
    scale = max(1, -(-min_height // h))
    return h * scale, w * scale


def resize_for_overlay(image: Optional[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """The image resized to ``size`` (H, W) like the model sees it; a missing image is a grey canvas."""
    h, w = size
    if image is None:
        canvas = np.full((h, w, 3), 96, dtype=np.uint8)
        cv2.putText(canvas, "missing", (max(2, w // 2 - 40), h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (230, 230, 230), 1, cv2.LINE_AA)
        return canvas
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR)


def selection_overlay(image: np.ndarray, grid_size: tuple[int, int], intra: Optional[np.ndarray],
                      inter: Optional[np.ndarray], final: Optional[np.ndarray] = None) -> np.ndarray:
    """Tint the patches SIM kept (``final``, default intra | inter) by intra / inter / both.

    Args:
        image: [H, W, 3] uint8, H and W multiples of the grid (see :func:`overlay_size`).
        grid_size: patch grid (h, w); masks are [h * w] bools in row-major order.
    """
    out = image.copy()
    if intra is None or inter is None:
        return out
    gh, gw = grid_size
    intra = np.asarray(intra, dtype=bool).reshape(gh, gw)
    inter = np.asarray(inter, dtype=bool).reshape(gh, gw)
    kept = (intra | inter) if final is None else np.asarray(final, dtype=bool).reshape(gh, gw)
    colours = np.zeros((gh, gw, 3), dtype=np.float32)
    colours[intra & ~inter] = INTRA_COLOUR
    colours[inter & ~intra] = INTER_COLOUR
    colours[intra & inter] = BOTH_COLOUR
    h, w = image.shape[:2]
    cell_colours = cv2.resize(colours, (w, h), interpolation=cv2.INTER_NEAREST)
    cell_kept = cv2.resize(kept.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    blended = (1 - TINT_ALPHA) * out.astype(np.float32) + TINT_ALPHA * cell_colours
    out[cell_kept] = blended[cell_kept].round().astype(np.uint8)
    _draw_grid(out, grid_size)
    return out


def grid_to_pixels(points: np.ndarray, grid_size: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """[..., 2] (x, y) in [-1, 1] over the patch grid (align_corners=True) -> pixel (x, y) floats."""
    gh, gw = grid_size
    h, w = image_hw
    points = np.asarray(points, dtype=np.float64)
    col = (points[..., 0] + 1) / 2 * (gw - 1) + 0.5  # in patch units, 0.5 = centre of the first patch
    row = (points[..., 1] + 1) / 2 * (gh - 1) + 0.5
    return np.stack([col * w / gw, row * h / gh], axis=-1)


def sampling_overlay(image: np.ndarray, grid_size: tuple[int, int], reference: Optional[np.ndarray],
                     positions: Optional[np.ndarray]) -> np.ndarray:
    """Draw each LAM reference point and an arrow to the position it sampled.

    Args:
        reference: [K, 2] (x, y) in [-1, 1]; positions: [K, 2] likewise.
    """
    out = image.copy()
    if reference is None or positions is None:
        return out
    h, w = out.shape[:2]
    start = grid_to_pixels(reference, grid_size, (h, w)).round().astype(int)
    end = grid_to_pixels(positions, grid_size, (h, w)).round().astype(int)
    thickness = max(1, h // 160)
    radius = max(2, h // 80)
    for (x0, y0), (x1, y1) in zip(start.tolist(), end.tolist()):
        if (x0, y0) != (x1, y1):
            length = max(1.0, float(np.hypot(x1 - x0, y1 - y0)))
            cv2.arrowedLine(out, (x0, y0), (x1, y1), ARROW_COLOUR, thickness, cv2.LINE_AA,
                            tipLength=min(0.5, 8.0 / length))
        cv2.circle(out, (x0, y0), radius, REFERENCE_COLOUR, -1, cv2.LINE_AA)
        cv2.circle(out, (x0, y0), radius, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def explanation_overlay(image: Optional[np.ndarray], grid_size: tuple[int, int], image_size: tuple[int, int],
                        intra=None, inter=None, final=None, reference=None, positions=None) -> np.ndarray:
    """Selection tint and sampling arrows on one modality's image, upscaled (see :func:`overlay_size`).

    A missing modality (``image`` None) is drawn as a grey "missing" canvas with the overlays on it.
    """
    canvas = resize_for_overlay(image, overlay_size(image_size))
    canvas = selection_overlay(canvas, grid_size, _np(intra), _np(inter), _np(final))
    return sampling_overlay(canvas, grid_size, _np(reference), _np(positions))


def legend_html() -> str:
    """An HTML legend for the overlay colours."""
    def swatch(colour, label):
        return (f'<span style="display:inline-block;width:0.9em;height:0.9em;margin:0 0.3em 0 1em;'
                f'vertical-align:middle;border:1px solid #888;background:rgb{colour}"></span>{label}')

    return ('<div class="signal-legend">SIM kept:' + swatch(INTRA_COLOUR, "intra-modal selection")
            + swatch(INTER_COLOUR, "inter-modal selection") + swatch(BOTH_COLOUR, "both")
            + " &nbsp; LAM:" + swatch(REFERENCE_COLOUR, "reference point")
            + swatch(ARROW_COLOUR, "arrow to where it sampled") + "</div>")


def _draw_grid(image: np.ndarray, grid_size: tuple[int, int]) -> None:
    """Faint patch-grid lines, in place."""
    gh, gw = grid_size
    h, w = image.shape[:2]
    for r in range(1, gh):
        y = r * h // gh
        image[y, :] = (image[y, :].astype(np.uint16) * 3 // 4).astype(np.uint8)
    for c in range(1, gw):
        x = c * w // gw
        image[:, x] = (image[:, x].astype(np.uint16) * 3 // 4).astype(np.uint8)


def _np(value):
    """A torch tensor or array as numpy (None stays None)."""
    if value is None:
        return None
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
