"""Distractor objects (poles, bins, signs, bikes, lamps, car fronts, other pedestrians) from a shared pool."""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import cv2

from .canvas import draw3
from .palette import NIR_LEVELS, PALETTE, SKIN
from .streams import T_DISTRACTOR, stream

KINDS = ["pole", "bin", "sign", "bike", "lamp", "car", "pedestrian", "pedestrian"]  # pedestrians twice as likely


@lru_cache(maxsize=256)
def distractor(seed: int, k: int, palette_size: int) -> dict:
    """Distractor ``k`` of the pool: {"kind", "c1", "c2" (RGB), "n1", "n2" (NIR), "heat", "size"}."""
    rng = stream(seed, T_DISTRACTOR, k)
    kind = str(rng.choice(KINDS))
    return {"kind": kind, "c1": PALETTE[rng.integers(palette_size)], "c2": PALETTE[rng.integers(palette_size)],
            "n1": float(rng.choice(NIR_LEVELS)), "n2": float(rng.choice(NIR_LEVELS)),
            "heat": float(rng.uniform(0.55, 0.85)) if kind in ("pedestrian", "car") else float(rng.uniform(0.2, 0.4)),
            "size": float(rng.uniform(0.7, 1.1))}


def draw_distractor(layers, d: dict, x: float, y: float, scale: float) -> None:
    """Distractor with its base at (x, y) pixels; ``scale`` in image heights."""
    s = scale * d["size"]
    xi, yi = round(x), round(y)

    def r(v):
        return max(1, round(v * s))
    _DRAW.get(d["kind"], _pedestrian)(layers, d, xi, yi, s, r)


def _pole(layers, d: dict, xi: int, yi: int, s: float, r: Callable) -> None:
    draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.02), yi - r(0.9)), (xi + r(0.02), yi), c, -1),
          d["c1"] * 0.7, d["n1"], d["heat"])


def _bin(layers, d: dict, xi: int, yi: int, s: float, r: Callable) -> None:
    draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.1), yi - r(0.28)), (xi + r(0.1), yi), c, -1),
          d["c1"], d["n1"], d["heat"])
    draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.12), yi - r(0.31)), (xi + r(0.12), yi - r(0.27)), c, -1),
          d["c2"], d["n2"], d["heat"])


def _sign(layers, d: dict, xi: int, yi: int, s: float, r: Callable) -> None:
    draw3(layers, lambda im, c: cv2.line(im, (xi, yi), (xi, yi - r(0.6)), c, max(1, r(0.02))), (0.4,) * 3, 0.3, 0.25)
    draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.12), yi - r(0.75)), (xi + r(0.12), yi - r(0.55)), c, -1),
          d["c1"], d["n1"], 0.3)


def _bike(layers, d: dict, xi: int, yi: int, s: float, r: Callable) -> None:
    for dx in (-0.12, 0.12):
        draw3(layers, lambda im, c, dx=dx: cv2.circle(im, (xi + round(dx * s), yi - r(0.08)), r(0.08), c, 2),
              (0.1,) * 3, 0.2, 0.3)
    draw3(layers, lambda im, c: cv2.line(im, (xi - r(0.12), yi - r(0.08)), (xi + r(0.04), yi - r(0.22)), c, 2),
          d["c1"], d["n1"], 0.3)
    draw3(layers, lambda im, c: cv2.line(im, (xi + r(0.12), yi - r(0.08)), (xi + r(0.04), yi - r(0.22)), c, 2),
          d["c1"], d["n1"], 0.3)


def _lamp(layers, d: dict, xi: int, yi: int, s: float, r: Callable) -> None:
    draw3(layers, lambda im, c: cv2.line(im, (xi, yi), (xi, yi - r(0.8)), c, max(1, r(0.025))), (0.3,) * 3, 0.25, 0.3)
    draw3(layers, lambda im, c: cv2.circle(im, (xi, yi - r(0.82)), r(0.05), c, -1), (0.98, 0.95, 0.7), 0.95, 0.98)


def _car(layers, d: dict, xi: int, yi: int, s: float, r: Callable) -> None:
    heat = d["heat"]
    draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.3), yi - r(0.22)), (xi + r(0.3), yi - r(0.05)), c, -1),
          d["c1"], d["n1"], heat * 0.7)
    for dx in (-0.18, 0.18):
        draw3(layers, lambda im, c, dx=dx: cv2.circle(im, (xi + round(dx * s), yi - r(0.05)), r(0.05), c, -1),
              (0.08,) * 3, 0.15, heat)


def _pedestrian(layers, d: dict, xi: int, yi: int, s: float, r: Callable) -> None:
    """A non-target person silhouette, warm in TIR."""
    heat = d["heat"]
    draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.06), yi - r(0.45)), (xi + r(0.06), yi), c, -1),
          d["c2"], d["n2"], heat * 0.85)
    draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.09), yi - r(0.78)), (xi + r(0.09), yi - r(0.43)), c, -1),
          d["c1"], d["n1"], heat)
    draw3(layers, lambda im, c: cv2.circle(im, (xi, yi - r(0.86)), r(0.07), c, -1), SKIN[1], 0.7, 0.95)


_DRAW = {"pole": _pole, "bin": _bin, "sign": _sign, "bike": _bike, "lamp": _lamp, "car": _car}
