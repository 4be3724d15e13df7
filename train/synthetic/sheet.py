"""A contact sheet (PNG) of a few identities, rendered directly: RGB | NIR | TIR per camera."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from signal_core.utils.atomic import atomic_write

from .identity import make_identity
from .render import render_frame
from .spec import SyntheticSpec

GAP = 4  # white pixels between cells and rows


def contact_sheet(spec: SyntheticSpec, out_png: str | Path, pids: Sequence[int] | None = None,
                  cameras: Sequence[int] = (0, 1), zoom: int = 2) -> Path:
    """PNG grid: one row per identity, for each camera the RGB | NIR | TIR images side by side
    (rendered directly, not read from disk), plus a row of night renders of the first identity."""
    if pids is None:  # two person-like and two vehicle-like test identities where there are some
        test = list(spec.pids("test"))
        people = [p for p in test if make_identity(spec, p).kind == "person"]
        cars = [p for p in test if make_identity(spec, p).kind == "vehicle"]
        pids = (people[:2] + cars[:2] + test)[:4] if cars else test[:4]
    rows = [_row(spec, pid, cameras) for pid in pids]
    rows.append(_row(spec.replace(night=1.0), pids[0], cameras))
    sheet = np.vstack([np.vstack([r, np.full((GAP, r.shape[1], 3), 255, np.uint8)]) for r in rows])
    sheet = cv2.resize(sheet, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    # PNG whatever the name's extension (cv2.imwrite picks by extension, and returns False on a failed write)
    return atomic_write(out_png, lambda tmp: Image.fromarray(sheet).save(tmp, format="PNG"), suffix=".png")


def _row(spec: SyntheticSpec, pid: int, cameras: Sequence[int]) -> np.ndarray:
    """RGB | NIR | TIR of image 0 of ``pid`` for each camera, cameras separated by a white gap: [H, W', 3]."""
    cells = []
    for cam in cameras:
        fr = render_frame(spec, "test" if pid > spec.train_ids else "train", pid, cam % spec.cameras, 0)
        cells += [fr.rgb, *(np.repeat(g[..., None], 3, 2) for g in (fr.nir, fr.tir))]
        cells.append(np.full((spec.height, GAP, 3), 255, np.uint8))
    return np.hstack(cells[:-1])
