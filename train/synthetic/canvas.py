"""Drawing primitives: pixel grids, texture masks, the label canvas, smooth random fields, 3-layer drawing."""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np

from .palette import CHECKS, PLAIN, STRIPES


@lru_cache(maxsize=16)
def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates, float32 ``[h, w]`` each (cached: never modify them)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def pattern(tex: tuple, xs: np.ndarray, ys: np.ndarray) -> np.ndarray | None:
    """Boolean texture mask over the canvas (None for plain)."""
    kind, angle, period = tex
    if kind == PLAIN:
        return None
    c, s = math.cos(angle), math.sin(angle)
    u = (xs * c + ys * s) / period
    v = (ys * c - xs * s) / period
    if kind == STRIPES:
        return (np.floor(u) % 2) == 0
    if kind == CHECKS:
        return ((np.floor(u) + np.floor(v)) % 2) == 0
    fu, fv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5
    return fu * fu + fv * fv < 0.09


class Canvas:
    """Label map drawn with normalised coordinates (x / W, y / H); sub-pixel precision."""

    SHIFT = 3

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.label = np.zeros((h, w), np.uint8)

    def _pts(self, pts) -> np.ndarray:
        arr = np.asarray(pts, np.float64) * (self.w, self.h) * (1 << self.SHIFT)
        return np.round(arr).astype(np.int32).reshape(-1, 1, 2)

    def poly(self, code: int, pts) -> None:
        """Filled polygon of part ``code``."""
        cv2.fillPoly(self.label, [self._pts(pts)], int(code), cv2.LINE_8, self.SHIFT)

    def rect(self, code: int, x0, y0, x1, y1) -> None:
        """Filled axis-aligned rectangle of part ``code``."""
        self.poly(code, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])

    def ellipse(self, code: int, cx, cy, rx, ry, start=0.0, end=360.0) -> None:
        """Filled ellipse (or sector from ``start`` to ``end`` degrees) of part ``code``."""
        f = 1 << self.SHIFT
        cv2.ellipse(self.label, (round(cx * self.w * f), round(cy * self.h * f)),
                    (max(1, round(rx * self.w * f)), max(1, round(ry * self.h * f))), 0.0, start, end,
                    int(code), -1, cv2.LINE_8, self.SHIFT)

    def line(self, code: int, p0, p1, thickness: float) -> None:
        """Line of part ``code``, ``thickness`` in image widths."""
        a, b = self._pts([p0, p1]).reshape(2, 2)
        cv2.line(self.label, tuple(map(int, a)), tuple(map(int, b)), int(code),
                 max(1, round(thickness * self.w)), cv2.LINE_8, self.SHIFT)


def smooth_field(rng: np.random.Generator, h: int, w: int, cell: int, amplitude: float) -> np.ndarray:
    """Low-frequency random field (folds, shadows, stains) of about +-amplitude, float32 [h, w]."""
    coarse = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    return amplitude * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def draw3(layers, fn: Callable, rgb, nir, tir) -> None:
    """Draw the same shape into the RGB, NIR and TIR float layers with per-modality values."""
    fn(layers[0], tuple(float(v) for v in rgb))
    fn(layers[1], float(nir))
    fn(layers[2], float(tir))
