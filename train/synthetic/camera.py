"""What a camera does to an identity: the side it sees, its colour response, placement and misalignment."""
from __future__ import annotations

import cv2
import numpy as np

from .spec import VIEWS, SyntheticSpec
from .streams import SPLIT_CODE, T_CAMERA, T_RIG, T_VIEW, stream


def view_of(spec: SyntheticSpec, split: str, pid: int, camera: int) -> str:
    """The side from which ``camera`` sees identity ``pid`` (same for all its images there)."""
    rng = stream(spec.seed, T_VIEW, SPLIT_CODE[split], pid, camera)
    u, v = rng.random(), int(rng.integers(len(VIEWS)))
    return VIEWS[v] if u < spec.viewpoint else "front"


def camera_params(spec: SyntheticSpec, camera: int) -> dict:
    """Illumination of ``camera``: RGB "gain" [3], "bright", "gamma", "grad" [2], "nir_gain", "tir_offset"."""
    rng = stream(spec.seed, T_CAMERA, camera, 0)
    return {"gain": rng.uniform(-0.08, 0.08, 3), "bright": rng.uniform(-0.12, 0.08), "gamma": rng.uniform(-0.12, 0.12),
            "grad": rng.uniform(-0.2, 0.2, 2), "nir_gain": rng.uniform(-0.04, 0.04),
            "tir_offset": rng.uniform(-0.02, 0.02)}


def object_matrix(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """``[2, 3]`` affine map of the canonical render into the frame (scale, shift, shear jitter)."""
    h, w, L = spec.height, spec.width, spec.viewpoint
    scale = 1.0 * (1.0 + L * rng.uniform(-0.08, 0.02))
    dx, dy = L * rng.uniform(-0.1, 0.1) * w, L * rng.uniform(-0.04, 0.05) * h
    shear = L * rng.uniform(-0.08, 0.08)
    cx, cy = w / 2, h / 2
    m = np.array([[scale, scale * shear, 0.0], [0.0, scale, 0.0]])
    m[:, 2] = (cx + dx, cy + dy) - m[:, :2] @ (cx, cy)
    return m


def misalign_matrix(spec: SyntheticSpec, rng: np.random.Generator, rig: tuple[float, float] = (0.0, 0.0),
                    rotation: float = 0.0) -> np.ndarray:
    """``[2, 3]`` affine map about the centre of a NIR or TIR frame relative to RGB: the camera rig's
    fixed shift ``rig`` (x, y pixels) plus this image's jitter shift and scale, rotated ``rotation`` degrees."""
    t = rng.uniform(-1, 1, 2) * spec.misalign + np.asarray(rig, float)
    s = 1.0 + rng.uniform(-1, 1) * spec.misalign_scale if spec.misaligned else 1.0
    cx, cy = spec.width / 2, spec.height / 2
    if rotation == 0.0:
        return np.array([[s, 0.0, cx - s * cx + t[0]], [0.0, s, cy - s * cy + t[1]]])
    a = np.deg2rad(rotation)
    lin = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([lin, (np.array([cx, cy]) - lin @ (cx, cy) + t)[:, None]])


def rig_shifts(spec: SyntheticSpec, camera: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """The fixed (x, y) pixel shifts of ``camera``'s NIR and TIR sensors relative to its RGB sensor
    (uniform in +-``rig_shift`` per axis; the same for every image of that camera)."""
    if spec.rig_shift <= 0:
        return (0.0, 0.0), (0.0, 0.0)
    d = stream(spec.seed, T_RIG, camera).uniform(-1, 1, (2, 2)) * spec.rig_shift
    return (float(d[0, 0]), float(d[0, 1])), (float(d[1, 0]), float(d[1, 1]))


def warp(img: np.ndarray, m: np.ndarray, w: int, h: int, border=cv2.BORDER_CONSTANT) -> np.ndarray:
    """``img`` mapped by the affine ``m`` into a ``w`` x ``h`` frame (bilinear)."""
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
