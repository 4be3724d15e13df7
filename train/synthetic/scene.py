"""Background scenes: a pool shared by all identities (walls, ground, windows, poles, bushes, lamps...)."""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from .canvas import draw3, grid, pattern, smooth_field
from .palette import CHECKS, NIR_LEVELS, PALETTE
from .spec import SyntheticSpec
from .streams import T_CAMERA, T_SCENE, stream

SHAPE_KINDS = ["window", "pole", "bush", "lamp", "poster", "cable"]


def plain_background():
    """(rgb [3], nir, tir) float32 values of the plain background (clutter 0)."""
    return (np.array([0.5, 0.5, 0.5], np.float32), np.float32(0.4), np.float32(0.2))


def camera_scenes(spec: SyntheticSpec, camera: int) -> np.ndarray:
    """Indices of the pool scenes that ``camera`` sees."""
    return stream(spec.seed, T_CAMERA, camera, 1).choice(spec.scene_pool, spec.scenes_per_camera, replace=False)


@lru_cache(maxsize=64)
def scene(spec_key: tuple, k: int):
    """Background scene ``k`` of the pool at clutter level ``spec_key[3]`` (rendered once, cached).

    Args:
        spec_key: (seed, image height, image width, clutter level, palette size).
        k: scene index in the pool.

    Returns:
        float32 (rgb [Hs,Ws,3], nir [Hs,Ws], tir [Hs,Ws]) larger than the image, to crop from.
    """
    seed, h, w, level, palette_size = spec_key
    hs, ws = int(h * 1.3), int(w * 2.0)
    rng = stream(seed, T_SCENE, k)
    layers, horizon = _ground_and_wall(rng, hs, ws, palette_size)
    _surface_textures(rng, layers, horizon)
    for _ in range(round(10 * level)):
        _shape(rng, layers, horizon, palette_size)
    rgb, nir, _ = layers
    light = 1.0 + smooth_field(rng, hs, ws, 12, 0.08)  # shadows / stains
    rgb *= light[..., None]
    nir *= light
    contrast = min(level, 1.0)
    for layer, base in zip(layers, plain_background()):
        layer *= contrast
        layer += (1.0 - contrast) * np.asarray(base, np.float32)
    return tuple(np.ascontiguousarray(layer) for layer in layers)


def _ground_and_wall(rng: np.random.Generator, hs: int, ws: int, palette_size: int):
    """Mostly grey wall over the ground, tinted from the palette: ((rgb, nir, tir), horizon row)."""
    grey = rng.uniform(0.35, 0.65)
    wall = grey + 0.15 * (PALETTE[rng.integers(palette_size)] - PALETTE[rng.integers(palette_size)].mean())
    ground = rng.uniform(0.3, 0.5) + 0.1 * (PALETTE[rng.integers(palette_size)] - 0.5)
    horizon = int(hs * rng.uniform(0.45, 0.75))
    rgb = np.empty((hs, ws, 3), np.float32)
    rgb[:horizon], rgb[horizon:] = wall, ground
    nir = np.empty((hs, ws), np.float32)
    nir[:horizon], nir[horizon:] = rng.uniform(0.3, 0.55), rng.uniform(0.25, 0.45)
    tir = np.empty((hs, ws), np.float32)
    tir[:horizon], tir[horizon:] = rng.uniform(0.15, 0.25), rng.uniform(0.18, 0.28)
    return (rgb, nir, tir), horizon


def _surface_textures(rng: np.random.Generator, layers, horizon: int) -> None:
    """Wall texture (bricks / panels) and ground tiles, darkening RGB and NIR in place."""
    rgb, nir, _ = layers
    xs, ys = grid(*nir.shape)
    tex = pattern((int(rng.integers(1, 3)), float(rng.choice([0, math.pi / 2])), float(rng.uniform(4, 12))), xs, ys)
    if tex is not None:
        upper = (ys < horizon) & tex
        rgb[upper] *= 0.8
        nir[upper] *= 0.75
    tiles = pattern((CHECKS, float(rng.uniform(0, math.pi)), float(rng.uniform(8, 16))), xs, ys)
    lower = (ys >= horizon) & tiles
    rgb[lower] *= 0.85
    nir[lower] *= 0.85


def _shape(rng: np.random.Generator, layers, horizon: int, palette_size: int) -> None:
    """One random window, pole, bush, lamp, poster or cable, each with its own NIR reflectance and heat."""
    hs, ws = layers[1].shape
    kind = rng.choice(SHAPE_KINDS)
    x, y = int(rng.integers(0, ws)), int(rng.integers(0, hs))
    col = PALETTE[rng.integers(palette_size)]
    if kind in ("window", "poster"):
        rw, rh = int(rng.integers(6, 22)), int(rng.integers(6, 26))
        heat = 0.45 if kind == "window" else 0.25
        draw3(layers, lambda im, c: cv2.rectangle(im, (x, y), (x + rw, y + rh), c, -1),
              col * 0.8 if kind == "poster" else (0.3, 0.38, 0.45), rng.choice(NIR_LEVELS), heat)
    elif kind == "pole":
        t, lean = int(rng.integers(2, 5)), int(rng.integers(-3, 4))
        draw3(layers, lambda im, c: cv2.line(im, (x, 0), (x + lean, hs), c, t),
              col * 0.7, rng.choice(NIR_LEVELS), 0.3)
    elif kind == "bush":
        r = int(rng.integers(6, 16))
        draw3(layers, lambda im, c: cv2.ellipse(im, (x, max(y, horizon)), (r, int(r * 0.7)), 0, 0, 360, c, -1),
              (0.15, 0.42, 0.15), 0.85, 0.35)
    elif kind == "lamp":
        r = int(rng.integers(2, 5))
        draw3(layers, lambda im, c: cv2.circle(im, (x, min(y, horizon)), r, c, -1), (0.98, 0.92, 0.6), 0.9, 0.97)
    else:
        dy = int(rng.integers(-10, 10))
        draw3(layers, lambda im, c: cv2.line(im, (0, y), (ws, y + dy), c, 1),
              (0.1, 0.1, 0.1), 0.2, 0.2)
