"""Drawing what the model looked at on top of an input image (numpy + PIL, no cv2, no gradio).

* SIM token selection: the patches SIM passed on, tinted by why they were kept: by the modality's
  own class token (intra-modal selection, green), by the other modalities' queries (inter-modal
  selection, blue), or by both (amber). Removed patches can be left as they are (the demo), dimmed,
  or blacked out (the paper's Fig. 8).
* LAM deformable sampling: each reference point (white dot) with a red arrow to where it sampled.
  Learned offsets are often a fraction of a pixel; ``offset_scale`` lengthens every arrow by that
  factor (the caller states it) and :func:`auto_offset_scale` picks a round factor that makes the
  typical arrow about three quarters of a patch long, at most x5 (:data:`MAX_OFFSET_SCALE`): a
  mechanism that moved nothing is shown as moving nothing, not blown up to look as if it had. With
  image-level registration the positions include its displacement, whole pixels that need no
  lengthening: :func:`lam_arrow_scale` draws them at their true length (factor 1).

Coordinates from :meth:`signal_core.SignalModel.explain` are in [-1, 1] (x, y) over the patch grid
with ``align_corners=True``: -1 is the centre of the first patch, +1 the centre of the last.
All functions take and return [H, W, 3] uint8 RGB arrays and never change their input.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

INTRA_COLOUR = (0, 200, 83)  # green: intra-modal selection only
INTER_COLOUR = (41, 121, 255)  # blue: inter-modal selection only
BOTH_COLOUR = (255, 196, 0)  # amber: both
REFERENCE_COLOUR = (255, 255, 255)
ARROW_COLOUR = (255, 23, 68)  # red
TINT_ALPHA = 0.45
DIM_FACTOR = 0.35  # removed="dim": removed patches at 35 % brightness
MIN_OVERLAY_HEIGHT = 384
REMOVED_MODES = ("keep", "dim", "black")
MAX_OFFSET_SCALE = 5.0  # the most auto_offset_scale lengthens LAM arrows (docs/alignment.md)


def overlay_size(image_size: tuple[int, int], min_height: int = MIN_OVERLAY_HEIGHT) -> tuple[int, int]:
    """(H, W) of the overlay canvas: the model's input size scaled up by an integer to >= min_height."""
    h, w = image_size
    scale = max(1, -(-min_height // h))
    return h * scale, w * scale


def resize_for_overlay(image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """The image resized to ``size`` (H, W) like the model sees it; a missing image is a grey canvas."""
    h, w = size
    if image is None:
        canvas = Image.new("RGB", (w, h), (96, 96, 96))
        ImageDraw.Draw(canvas).text((w // 2, h // 2), "missing", fill=(230, 230, 230), anchor="mm")
        return np.asarray(canvas).copy()
    pil = Image.fromarray(_as_rgb_uint8(image))
    resample = Image.Resampling.BOX if pil.height > h else Image.Resampling.BILINEAR
    return np.asarray(pil.resize((w, h), resample)).copy()


def selection_overlay(image: np.ndarray, grid_size: tuple[int, int], intra: np.ndarray | None,
                      inter: np.ndarray | None, final: np.ndarray | None = None,
                      removed: str = "keep") -> np.ndarray:
    """Tint the patches SIM kept (``final``, default intra | inter) by intra / inter / both.

    Args:
        image: [H, W, 3] uint8, H and W multiples of the grid (see :func:`overlay_size`).
        grid_size: patch grid (h, w); masks are [h * w] bools in row-major order.
        removed: what happens to the patches SIM dropped: "keep" (unchanged), "dim" or "black".
    """
    if removed not in REMOVED_MODES:
        raise ValueError(f"removed must be one of {REMOVED_MODES}, got {removed!r}")
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
    # per cell: pixel -> pixel * scale + add (kept: tinted; removed: unchanged, dimmed or black)
    dropped = {"keep": 1.0, "dim": DIM_FACTOR, "black": 0.0}[removed]
    scale = np.where(kept, np.float32(1 - TINT_ALPHA), np.float32(dropped)).astype(np.float32)  # [gh, gw]
    add = np.where(kept[..., None], TINT_ALPHA * colours, np.float32(0))  # [gh, gw, 3]
    pixel_scale = _cells_to_pixels(scale, out.shape[:2])[..., None]  # [H, W, 1]
    out = (out * pixel_scale + _cells_to_pixels(add, out.shape[:2])).round().astype(np.uint8)
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


def offset_pixels(reference: np.ndarray, positions: np.ndarray, grid_size: tuple[int, int],
                  image_hw: tuple[int, int]) -> np.ndarray:
    """[..., K] length of each sampling offset in pixels of an image of size ``image_hw``."""
    delta = grid_to_pixels(positions, grid_size, image_hw) - grid_to_pixels(reference, grid_size, image_hw)
    return np.hypot(delta[..., 0], delta[..., 1])


def auto_offset_scale(reference: np.ndarray, positions: np.ndarray, grid_size: tuple[int, int],
                      image_hw: tuple[int, int], target_patches: float = 0.75, quantile: float = 0.9,
                      max_scale: float | None = MAX_OFFSET_SCALE) -> float:
    """A round factor (1, 2, 5, 10, 20, 50, ...) that draws the ``quantile`` of the offset lengths at
    about ``target_patches`` patches (never longer), at most ``max_scale`` (None: no cap); 1 when they
    are already that long (or all zero).

    Args:
        reference: [K, 2]; positions: [..., K, 2] (x, y) in [-1, 1], as from ``explain``.
    """
    lengths = offset_pixels(reference, positions, grid_size, image_hw).ravel()
    typical = float(np.quantile(lengths, quantile)) if lengths.size else 0.0
    patch = min(image_hw[0] / grid_size[0], image_hw[1] / grid_size[1])
    if typical <= 1e-9 or typical >= target_patches * patch:
        return 1.0
    wanted = target_patches * patch / typical
    if max_scale is not None:
        wanted = min(wanted, max_scale)
    decade = 10.0 ** math.floor(math.log10(wanted))
    return max(1.0, max(m * decade for m in (1, 2, 5) if m * decade <= wanted))


def lam_arrow_scale(reference: np.ndarray, positions: np.ndarray, grid_size: tuple[int, int],
                    image_hw: tuple[int, int], registered: bool) -> float:
    """The factor LAM's arrows are drawn with: 1 (their true length) for a model with image-level registration
    (``registered``: its positions include the displacement it found, pixels long), else
    :func:`auto_offset_scale`'s."""
    return 1.0 if registered else auto_offset_scale(reference, positions, grid_size, image_hw)


def sampling_overlay(image: np.ndarray, grid_size: tuple[int, int], reference: np.ndarray | None,
                     positions: np.ndarray | None, offset_scale: float = 1.0) -> np.ndarray:
    """Draw each LAM reference point and an arrow to the position it sampled.

    Args:
        reference: [K, 2] (x, y) in [-1, 1]; positions: [K, 2] likewise.
        offset_scale: every arrow is this many times longer than the real offset (say so nearby).
    """
    out = image.copy()
    if reference is None or positions is None:
        return out
    h, w = out.shape[:2]
    start = grid_to_pixels(reference, grid_size, (h, w))  # [K, 2]
    end = start + offset_scale * (grid_to_pixels(positions, grid_size, (h, w)) - start)
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    thickness, radius = max(1, h // 160), max(2, h // 80)
    for (x0, y0), (x1, y1) in zip(start.tolist(), end.tolist()):
        _arrow(draw, (x0, y0), (x1, y1), thickness, head=max(4.0, 2.5 * radius))
    for x0, y0 in start.tolist():
        draw.ellipse((x0 - radius, y0 - radius, x0 + radius, y0 + radius), fill=REFERENCE_COLOUR,
                     outline=(0, 0, 0))
    return np.asarray(pil).copy()


def explanation_overlay(image: np.ndarray | None, grid_size: tuple[int, int], image_size: tuple[int, int],
                        intra=None, inter=None, final=None, reference=None, positions=None,
                        removed: str = "keep", offset_scale: float = 1.0) -> np.ndarray:
    """Selection tint and sampling arrows on one modality's image, upscaled (see :func:`overlay_size`).

    Masks and points may be numpy arrays or torch tensors (one item: [L] masks, [K, 2] points).
    A missing modality (``image`` None) is drawn as a grey "missing" canvas with the overlays on it.

    Returns:
        [H', W', 3] uint8 RGB, (H', W') = :func:`overlay_size` of ``image_size``.
    """
    canvas = resize_for_overlay(image, overlay_size(image_size))
    canvas = selection_overlay(canvas, grid_size, _np(intra), _np(inter), _np(final), removed=removed)
    return sampling_overlay(canvas, grid_size, _np(reference), _np(positions), offset_scale)


def legend_html() -> str:
    """An HTML legend for the overlay colours."""
    def swatch(colour, label):
        return (f'<span style="display:inline-block;width:0.9em;height:0.9em;margin:0 0.3em 0 1em;'
                f'vertical-align:middle;border:1px solid #888;background:rgb{colour}"></span>{label}')

    return ('<div class="signal-legend">SIM kept:' + swatch(INTRA_COLOUR, "intra-modal selection")
            + swatch(INTER_COLOUR, "inter-modal selection") + swatch(BOTH_COLOUR, "both")
            + " &nbsp; LAM:" + swatch(REFERENCE_COLOUR, "reference point")
            + swatch(ARROW_COLOUR, "arrow to where it sampled") + "</div>")


def _arrow(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], thickness: int,
           head: float, colour: tuple[int, int, int] = ARROW_COLOUR) -> None:
    """A line from ``start`` to ``end`` with a filled triangular head (nothing for a zero offset)."""
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    if length < 0.5:
        return
    head = min(head, 0.6 * length)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    bx, by = x1 - head * ux, y1 - head * uy  # base of the head
    draw.line([(x0, y0), (bx, by)], fill=colour, width=thickness)
    half = 0.5 * head
    draw.polygon([(x1, y1), (bx - half * uy, by + half * ux), (bx + half * uy, by - half * ux)], fill=colour)


def _cells_to_pixels(cells: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a [gh, gw, ...] grid to [H, W, ...] (cell r covers rows r*H/gh..)."""
    gh, gw = cells.shape[:2]
    rows = np.arange(hw[0]) * gh // hw[0]
    cols = np.arange(hw[1]) * gw // hw[1]
    return cells[rows][:, cols]


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


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """[H, W] or [H, W, 1 | 3 | 4] uint8 -> [H, W, 3] uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8 arrays, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image[..., :3]


def _np(value):
    """A torch tensor or array as numpy (None stays None)."""
    if value is None:
        return None
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
