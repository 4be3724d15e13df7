"""An identity's canonical (object-filling) render in RGB, NIR and TIR, before placement in a frame."""
from __future__ import annotations

import cv2
import numpy as np

from .canvas import Canvas, grid, pattern, smooth_field
from .identity import Identity, PartStyle
from .person import draw_person
from .vehicle import draw_vehicle


def render_object(ident: Identity, view: str, pose: dict, h: int, w: int,
                  rng: np.random.Generator | None = None):
    """Canonical (object-filling) render: (rgb [h,w,3], nir [h,w], tir [h,w], alpha [h,w]) float32.

    ``rng`` adds per-image cloth folds / shading and fine grain (surfaces are not flat colours)."""
    cv = Canvas(h, w)
    (draw_person if ident.kind == "person" else draw_vehicle)(cv, ident, view, pose)
    xs, ys = grid(h, w)
    rgb, nir, tir = _paint_parts(cv.label, ident.styles, xs, ys)
    alpha = (cv.label > 0).astype(np.float32)
    tir = _heat(tir, alpha, ident.blobs, xs, ys)
    # cylinder shading across the object (RGB and, weaker, NIR)
    shade = 1.0 - 0.22 * ((xs / w - 0.5) / 0.5) ** 2
    rgb *= shade[..., None]
    nir *= 1.0 - 0.5 * (1.0 - shade)
    if rng is not None:
        fold = smooth_field(rng, h, w, 6, 0.07) + 0.025 * rng.standard_normal((h, w), np.float32)
        rgb *= (1.0 + fold)[..., None]
        nir *= 1.0 + 0.8 * fold
    return np.clip(rgb, 0, 1), np.clip(nir, 0, 1), np.clip(tir, 0, 1), alpha


def _paint_parts(label: np.ndarray, styles: dict, xs: np.ndarray, ys: np.ndarray):
    """Per-part colour / reflectance / heat with textures: float32 (rgb [h,w,3], nir [h,w], tir [h,w])."""
    h, w = label.shape
    rgb = np.zeros((h, w, 3), np.float32)
    nir = np.zeros((h, w), np.float32)
    tir = np.zeros((h, w), np.float32)
    for code in np.unique(label):
        if code == 0:
            continue
        st: PartStyle = styles[int(code)]
        m = label == code
        pat = pattern(st.tex, xs, ys)
        rgb[m] = st.rgb if pat is None else np.where(pat[m][:, None], st.rgb2, st.rgb)
        npat = pattern(st.nir_tex, xs, ys)
        nir[m] = st.nir if npat is None else np.where(npat[m], st.nir2, st.nir)
        tir[m] = st.heat
    return rgb, nir, tir


def _heat(tir: np.ndarray, alpha: np.ndarray, blobs: tuple, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Per-identity warm blobs (body heat, engine parts) inside the object, then thermal diffusion."""
    h, w = tir.shape
    for bx, by, br, amp in blobs:
        d2 = ((xs / w - bx) / br) ** 2 + ((ys / h - by) / (br * w / h)) ** 2
        tir += alpha * amp * np.exp(-d2)
    return cv2.GaussianBlur(tir, (0, 0), 1.2) * alpha
