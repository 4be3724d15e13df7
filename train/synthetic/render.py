"""One frame: the identity placed on a camera's scene among distractors, then lit, night, misaligned, noisy."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .appearance import render_object
from .camera import camera_params, misalign_matrix, object_matrix, rig_shifts, view_of, warp
from .canvas import grid
from .distractors import distractor, draw_distractor
from .identity import Identity, make_identity
from .scene import camera_scenes, plain_background, scene
from .spec import SyntheticSpec
from .streams import (
    SPLIT_CODE,
    T_BACKGROUND,
    T_ILLUM,
    T_MISALIGN,
    T_NIGHT,
    T_NOISE,
    T_PLACE,
    T_POSE,
    T_ROTATION,
    stream,
)

NUM_SLOTS = 4  # distractor slots drawn per image (each present with probability 0.3 x clutter)


@dataclass
class Frame:
    """One rendered triple (before JPEG) with its object masks and metadata."""

    rgb: np.ndarray  # [H, W, 3] uint8, RGB order
    nir: np.ndarray  # [H, W] uint8
    tir: np.ndarray  # [H, W] uint8
    masks: np.ndarray  # [3, H, W] float32 object coverage in the RGB / NIR / TIR frames
    meta: dict


def render_frame(spec: SyntheticSpec, split: str, pid: int, camera: int, index: int) -> Frame:
    """Render image ``index`` of identity ``pid`` by ``camera`` (0-based); pure function of its arguments."""
    key = (SPLIT_CODE[split], pid, camera, index)
    ident = make_identity(spec, pid)
    view = view_of(spec, split, pid, camera)
    obj4, objt = _placed_object(spec, split, key, ident, view)
    layers, scene_k, slots = _background(spec, camera, key)
    rgb, nir, tir, alpha = _composite(spec, layers, slots, obj4, objt)
    rgb, nir, tir = _illuminate(spec, camera, key, rgb, nir, tir)
    rgb, night = _night(spec, key, rgb)
    nir, tir, masks, m_nir, m_tir = _misalign(spec, key, nir, tir, alpha)
    rgb, nir, tir = _sensor_noise(spec, key, rgb, nir, tir)
    meta = {"view": view, "kind": ident.kind, "night": night, "scene": scene_k if spec.clutter > 0 else -1,
            "nir_shift": _shift(spec, m_nir), "tir_shift": _shift(spec, m_tir), **_alignment_meta(spec, m_nir, m_tir)}
    return Frame(_quantise(rgb), _quantise(nir), _quantise(tir), masks, meta)


def _placed_object(spec: SyntheticSpec, split: str, key: tuple, ident: Identity, view: str):
    """Posed canonical render warped into the frame: (rgb + alpha [H,W,4], nir + tir + alpha [H,W,3])."""
    h, w = spec.height, spec.width
    rp = stream(spec.seed, T_POSE, *key)
    pose = {"spread": spec.viewpoint * float(rp.uniform(0.2, 1.0)), "swing": spec.viewpoint * float(rp.uniform(-1, 1))}
    if spec.viewpoint == 0:  # fixed pose, and the same cloth folds in every image of the identity
        pose = {"spread": 0.3, "swing": 0.0}
        rp = stream(spec.seed, T_POSE, SPLIT_CODE[split], ident.pid)
    obj_rgb, obj_nir, obj_tir, obj_a = render_object(ident, view, pose, h, w, rp)
    m_obj = object_matrix(spec, stream(spec.seed, T_PLACE, *key))
    obj4 = warp(np.dstack([obj_rgb, obj_a]), m_obj, w, h)
    objt = warp(np.dstack([obj_nir, obj_tir, obj_a]), m_obj, w, h)
    return obj4, objt


def _background(spec: SyntheticSpec, camera: int, key: tuple):
    """A crop of one of the camera's scenes (or the plain background) and the distractor slots.

    Returns:
        ((rgb [H,W,3], nir [H,W], tir [H,W]) float32, scene index, slots
        [(u_present, x, y, scale, u_front, pool index)]).
    """
    h, w = spec.height, spec.width
    rb = stream(spec.seed, T_BACKGROUND, *key)
    scenes = camera_scenes(spec, camera)
    scene_k = int(scenes[rb.integers(len(scenes))])
    ox, oy = rb.random(), rb.random()
    bg_jit = rb.uniform(-0.08, 0.08, 5)
    slots = [(rb.random(), rb.uniform(0, w), rb.uniform(0.55, 1.05) * h, rb.uniform(0.5, 0.9), rb.random(),
              int(rb.integers(spec.distractor_pool))) for _ in range(NUM_SLOTS)]
    if spec.clutter > 0:
        srgb, snir, stir = scene((spec.seed, h, w, float(spec.clutter), spec.palette_size), scene_k)
        y0, x0 = int(oy * (srgb.shape[0] - h)), int(ox * (srgb.shape[1] - w))
        rgb, nir, tir = (a[y0:y0 + h, x0:x0 + w].copy() for a in (srgb, snir, stir))
        bg_jit = min(spec.clutter, 1.0) * bg_jit  # per-image lighting of the scene (weather, time of day)
        rgb *= (1.0 + bg_jit[:3]).astype(np.float32)
        nir *= np.float32(1.0 + bg_jit[3])
        tir += np.float32(0.25 * bg_jit[4])
    else:
        base = plain_background()
        rgb = np.empty((h, w, 3), np.float32)
        rgb[:] = base[0]
        nir = np.full((h, w), base[1], np.float32)
        tir = np.full((h, w), base[2], np.float32)
    return (rgb, nir, tir), scene_k, slots


def _composite(spec: SyntheticSpec, layers, slots: list, obj4: np.ndarray, objt: np.ndarray):
    """Distractors behind the object, the object, then occluders in front of it.

    Returns:
        (rgb [H,W,3], nir [H,W], tir [H,W], alpha [H,W]): alpha is the visible object coverage.
    """
    h, w = spec.height, spec.width
    alpha = obj4[..., 3]
    p_present = min(1.0, 0.3 * spec.clutter)
    front = []
    for u, x, y, sc, u_front, k in slots:
        if u >= p_present:
            continue
        d = distractor(spec.seed, k, spec.palette_size)
        if u_front < 0.3:  # occluder: in front of the object, kept near the sides / bottom
            front.append((d, (x * 0.25 if x < w / 2 else w - (w - x) * 0.25), max(y, 0.95 * h), sc * h * 0.6))
        else:
            draw_distractor(layers, d, x, y, sc * h)
    rgb, nir, tir = layers
    a3 = alpha[..., None]
    rgb = rgb * (1 - a3) + obj4[..., :3] * a3
    nir = nir * (1 - alpha) + objt[..., 0] * alpha
    tir = tir * (1 - alpha) + objt[..., 1] * alpha
    layers = (rgb, nir, tir)
    occl = np.zeros((h, w), np.float32)
    for d, x, y, s in front:
        draw_distractor(layers, d, x, y, s)
        draw_distractor((np.zeros((h, w, 3), np.float32), occl, np.zeros((h, w), np.float32)),
                        {**d, "n1": 1.0, "n2": 1.0}, x, y, s)
    alpha = alpha * (1.0 - np.minimum(occl, 1.0))
    return rgb, nir, tir, alpha


def _illuminate(spec: SyntheticSpec, camera: int, key: tuple, rgb, nir, tir):
    """RGB: camera colour cast, brightness, gamma, gradient (+ per-image jitter); NIR gain; TIR offset."""
    h, w = spec.height, spec.width
    L = spec.illumination
    cam = camera_params(spec, camera)
    ri = stream(spec.seed, T_ILLUM, *key)
    jit = ri.uniform(-0.05, 0.05, 4)
    xs, ys = grid(h, w)
    grad = 1.0 + L * (cam["grad"][0] * (xs / w - 0.5) + cam["grad"][1] * (ys / h - 0.5))
    gain = (1.0 + L * (cam["gain"] + jit[:3])) * (1.0 + L * (cam["bright"] + jit[3]))
    rgb = np.clip(rgb * gain.astype(np.float32) * grad[..., None], 0, 1) ** float(math.exp(L * cam["gamma"]))
    nir = nir * float(1.0 + L * cam["nir_gain"])
    tir = tir + float(L * cam["tir_offset"])
    return rgb, nir, tir


def _night(spec: SyntheticSpec, key: tuple, rgb):
    """Night: dark, blue-cast, noisy RGB (NIR with active illumination and TIR are unchanged): (rgb, night)."""
    rn = stream(spec.seed, T_NIGHT, *key)
    u_night, dark, night_sigma = rn.random(), rn.uniform(0.14, 0.26), rn.uniform(0.025, 0.04)
    night = bool(u_night < spec.night)
    if night:
        rgb = rgb * (dark * np.array([0.75, 0.85, 1.2], np.float32))
        rgb = rgb + rn.normal(0, night_sigma, rgb.shape).astype(np.float32)
    return rgb, night


def _misalign(spec: SyntheticSpec, key: tuple, nir, tir, alpha: np.ndarray):
    """NIR / TIR misalignment relative to RGB (whole frame: the camera rig's shift plus per-image shift,
    scale and rotation, independent per modality), then TIR blur.

    Returns:
        (nir, tir, masks [3,H,W] object coverage per modality, NIR matrix, TIR matrix).
    """
    h, w = spec.height, spec.width
    rm = stream(spec.seed, T_MISALIGN, *key)
    rig_nir, rig_tir = rig_shifts(spec, key[2])
    rot = (stream(spec.seed, T_ROTATION, *key).uniform(-1, 1, 2) * spec.misalign_rotation
           if spec.misalign_rotation > 0 else (0.0, 0.0))
    m_nir, m_tir = misalign_matrix(spec, rm, rig_nir, float(rot[0])), misalign_matrix(spec, rm, rig_tir, float(rot[1]))
    masks = np.stack([alpha, alpha, alpha]).astype(np.float32)
    if spec.misaligned:
        nir = warp(nir.astype(np.float32), m_nir, w, h, cv2.BORDER_REFLECT)
        tir = warp(tir.astype(np.float32), m_tir, w, h, cv2.BORDER_REFLECT)
        masks[1] = warp(alpha, m_nir, w, h)
        masks[2] = warp(alpha, m_tir, w, h)
    tir = cv2.GaussianBlur(tir.astype(np.float32), (0, 0), 0.8)  # thermal optics are blurry
    return nir, tir, masks, m_nir, m_tir


def _sensor_noise(spec: SyntheticSpec, key: tuple, rgb, nir, tir):
    """Gaussian sensor noise in every modality (drawn even at level 0, so the streams stay aligned)."""
    h, w = spec.height, spec.width
    rs = stream(spec.seed, T_NOISE, *key)
    noise = [rs.standard_normal((h, w, 3), np.float32), rs.standard_normal((h, w), np.float32),
             rs.standard_normal((h, w), np.float32)]
    if spec.noise > 0:
        rgb = rgb + noise[0] * (0.016 * spec.noise)
        nir = nir + noise[1] * (0.018 * spec.noise)
        tir = tir + noise[2] * (0.012 * spec.noise)
    return rgb, nir, tir


def _shift(spec: SyntheticSpec, m: np.ndarray) -> list[float]:
    """The (x, y) pixel shift of the image centre under misalignment matrix ``m`` (rounded to 0.01; 0 when
    misalignment is off): where the content at the RGB frame's centre lies in the NIR / TIR frame."""
    if not spec.misaligned:
        return [0.0, 0.0]
    cx, cy = spec.width / 2, spec.height / 2
    return [round(float(m[0, 0] * cx + m[0, 1] * cy + m[0, 2] - cx), 2),
            round(float(m[1, 0] * cx + m[1, 1] * cy + m[1, 2] - cy), 2)]


def _alignment_meta(spec: SyntheticSpec, m_nir: np.ndarray, m_tir: np.ndarray) -> dict:
    """Scale and rotation (degrees) of each misalignment (only for specs with rig shifts or rotations)."""
    if spec.rig_shift <= 0 and spec.misalign_rotation <= 0:
        return {}
    out = {}
    for name, m in (("nir", m_nir), ("tir", m_tir)):
        out[f"{name}_scale"] = round(float(np.hypot(m[0, 0], m[1, 0])), 4)
        out[f"{name}_rotation"] = round(float(np.degrees(np.arctan2(m[1, 0], m[0, 0]))), 3)
    return out


def _quantise(a) -> np.ndarray:
    """Float image in [0, 1] -> uint8."""
    return np.clip(np.rint(np.asarray(a, np.float32) * 255.0), 0, 255).astype(np.uint8)
