"""Rank-list figures: a query triple and its top-k gallery triples, with green / red borders and scores.

Each triple is drawn as a column (RGB over NIR over TIR). The query has a grey border; a result has
a green border when it shows the query's identity and a red one otherwise, and a caption with its
rank, cosine similarity, identity and camera. Drawn with PIL; returns [H, W, 3] uint8 RGB arrays.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..modalities import LABELS, MODALITIES

MATCH_COLOUR = (0, 170, 60)  # green border: same identity as the query
MISMATCH_COLOUR = (220, 20, 40)  # red border: another identity
QUERY_COLOUR = (90, 90, 90)
BORDER = 4  # px
GAP = 6  # px between columns
CAPTION_LINES = 2


@dataclass
class RankedTriple:
    """One column of a rank list."""

    images: Sequence[np.ndarray]  # RGB, NIR, TIR as [H, W, 3] uint8 (any size; resized to the tile)
    pid: int
    camid: int  # 0-based (drawn 1-based, as in file names)
    rank: int | None = None  # 1-based; None for the query
    score: float | None = None  # cosine similarity to the query
    is_match: bool | None = None  # same identity as the query; None for the query


def _font(size: int) -> ImageFont.ImageFont:
    """PIL's bundled font at ``size`` px (the fixed bitmap font on Pillow without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def triple_column(images: Sequence[np.ndarray], tile_hw: tuple[int, int]) -> np.ndarray:
    """The three modality images resized to ``tile_hw`` (H, W) and stacked vertically: [3H, W, 3]."""
    h, w = tile_hw
    tiles = [np.asarray(Image.fromarray(np.asarray(im, dtype=np.uint8)).convert("RGB").resize(
        (w, h), Image.Resampling.BILINEAR)) for im in images]
    return np.concatenate(tiles, axis=0)


def _caption(item: RankedTriple) -> tuple[str, str]:
    if item.rank is None:
        return "query", f"id {item.pid} c{item.camid + 1}"
    return f"#{item.rank} {item.score:.3f}", f"id {item.pid} c{item.camid + 1}"


def ranklist_image(query: RankedTriple, results: Sequence[RankedTriple], tile_hw: tuple[int, int] = (128, 64),
                   title: str = "") -> np.ndarray:
    """One row: the query column, a separator, then the results with coloured borders and captions.

    Args:
        tile_hw: (H, W) of each modality image in the figure.
        title: optional text above the row.

    Returns:
        [H, W, 3] uint8 RGB; H = title + captions + 3 * tile height + borders.
    """
    h, w = tile_hw
    font_size = max(10, min(14, w // 5))
    font = _font(font_size)
    line_h = font_size + 3
    top = (line_h + 4 if title else 0) + CAPTION_LINES * line_h + 2
    col_w, col_h = w + 2 * BORDER, 3 * h + 2 * BORDER
    label_w = 4 * font_size  # modality names on the left
    width = label_w + (1 + len(results)) * (col_w + GAP) + 4 * GAP
    canvas = Image.new("RGB", (width, top + col_h + GAP), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((GAP, 2), title, fill=(0, 0, 0), font=font)
    for k, name in enumerate(LABELS[m] for m in MODALITIES):
        draw.text((GAP, top + BORDER + k * h + h // 2), name, fill=(60, 60, 60), font=font, anchor="lm")
    x = label_w
    for i, item in enumerate([query, *results]):
        colour = QUERY_COLOUR if item.is_match is None else (MATCH_COLOUR if item.is_match else MISMATCH_COLOUR)
        draw.rectangle((x, top, x + col_w - 1, top + col_h - 1), fill=colour)
        canvas.paste(Image.fromarray(triple_column(item.images, tile_hw)), (x + BORDER, top + BORDER))
        for j, line in enumerate(_caption(item)):
            draw.text((x + col_w // 2, top - (CAPTION_LINES - j) * line_h), line, fill=(0, 0, 0), font=font,
                      anchor="ma")
        x += col_w + GAP + (3 * GAP if i == 0 else 0)  # a wider gap after the query
    return np.asarray(canvas).copy()


def stack_rows(rows: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Rank-list rows one under another (right-padded with white to the widest): [H, W, 3] uint8."""
    width = max(r.shape[1] for r in rows)
    parts = []
    for r in rows:
        pad = np.full((r.shape[0] + gap, width, 3), 255, dtype=np.uint8)
        pad[: r.shape[0], : r.shape[1]] = r
        parts.append(pad)
    return np.concatenate(parts, axis=0)
