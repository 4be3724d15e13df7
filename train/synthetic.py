"""Procedural multi-modal ReID benchmark (RGB / NIR / TIR triples) in the RGBNT201 folder layout.

``python -m train.synthetic --out DIR`` writes the default benchmark (seed 0, 600 train + 100 test
identities, 4 cameras, 2 images per identity and camera, 128 x 64 images; about 25 s on one core,
73 MiB of JPEGs):

    DIR/train_171/{RGB,NI,TI}/PPPPPP_camK_III.jpg    PPPPPP = 1-based identity, K = 1-based camera,
    DIR/test/{RGB,NI,TI}/PPPPPP_camK_III.jpg         III = image index within (identity, camera)
    DIR/synthetic.json                               the full spec + per-image metadata (written last)

``signal_core.data.load_dataset("rgbnt201", DIR)`` reads it (query = gallery = test set, camera
protocol). Train and test identities are disjoint (train 1..N, test N+1..N+M).

What the benchmark tests (the three things Signal is about) and why a colour histogram fails:

* Objects: each identity is person-like (head, hair, torso, arms, legs, shoes, optional hat, chest
  logo, shoulder bag or backpack) or vehicle-like (body, cabin, windows, wheels, lights, plate,
  optional roof box and decal). Every part has its own colour and texture (plain / stripes / checks /
  dots, with orientation and period). Colours come from a small shared palette, and identities are
  grouped into "colour sets" of three colours: the identities of one set have the SAME colours,
  arranged differently over the parts, so identity lies in the spatial arrangement, not in the
  global colour distribution. Surfaces carry per-image folds / shading and fine grain.
* NIR: per-part reflectance drawn independently from the RGB colour, with its own texture (a plain
  RGB shirt can be striped in NIR); skin and vegetation are bright, glass dark, plates retro-reflective.
* TIR: per-identity heat pattern (warm skin, clothing heat by insulation, hot engine / wheels /
  exhaust for vehicles, plus a few smooth warm blobs per identity); cool background, hot lamps; blurry.
* Background: every camera sees a few scenes from a POOL shared by all identities (walls, ground,
  windows, poles, bushes, lamps, each with its own NIR reflectance and TIR heat), plus distractor
  objects (poles, bins, signs, bikes, lamps, car fronts, other pedestrians) from a shared pool that
  partially overlap or occlude the object. Background is camera-specific, so matching on it matches
  the camera, not the identity: this is the interference that token selection should remove.
* Misalignment: NIR and TIR are shifted and scaled by a few pixels relative to RGB, independently
  per image (what local deformable alignment should absorb).

Difficulty switches (``SyntheticSpec`` field = CLI flag; level 0 disables that difficulty):

* ``viewpoint`` (``--viewpoint``, default 1): probability that a camera sees an identity from a
  random side (front / back / left / right; parts such as the backpack, logo or face are visible
  only from some sides), and the amount of scale, position, pose (leg spread, arm swing) and shear
  jitter, and per-image cloth folds. 0: always front, centred, fixed scale, neutral pose, fixed folds.
* ``illumination`` (``--illumination``, default 1): per-camera RGB colour cast, brightness, gamma
  and a brightness gradient (plus small per-image jitter); NIR gain and TIR offset vary a little.
  0: no change.
* ``night`` (``--night``, default 0.25): fraction of images taken at night: RGB dark, blue-cast and
  noisy, NIR unchanged (active illumination), TIR unchanged. 0: no night image.
* ``clutter`` (``--clutter``, default 1, up to 2): background scenes (texture contrast and number
  of shapes) and distractor objects (about 1.2 x level per image, some in front of the object).
  0: plain uniform background, no distractors.
* ``misalign`` (``--misalign``, default 3 pixels) and ``misalign_scale`` (``--misalign-scale``,
  default 0.04): NIR and TIR shift (uniform in +-misalign px per axis) and scale (1 +- misalign_scale)
  relative to RGB, independent per image and modality. ``misalign 0`` disables both.
* ``noise`` (``--noise``, default 1): Gaussian sensor noise in every modality (sigma about 4 / 255 x
  level). 0: none (night images keep their own low-light noise, part of the night switch).

Determinism: identity appearance depends only on (seed, pid); the random draws of one image come from
``numpy.random.SeedSequence([seed, aspect, split, pid, camera, index])``, one stream per aspect
(pose, placement, background, night, noise, misalignment...), so results never depend on the order
of generation, and switching one difficulty does not change the draws of the others. The same spec
gives byte-identical files (JPEG via ``cv2.imencode``, fixed quality).

``--demo-assets OUT`` also exports a small query / gallery set from the test split for the demo, and
``--sheet PNG`` a contact sheet of a few identities.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from signal_core.atomic import write_json

GENERATOR = "signal-synthetic"
GENERATOR_VERSION = 1
SPLIT_DIRS = {"train": "train_171", "test": "test"}
MODALITY_DIRS = ("RGB", "NI", "TI")
VIEWS = ("front", "back", "left", "right")

# Shared palette (RGB in [0, 1]); ``palette_size`` takes the first N.
PALETTE = np.array([
    (0.12, 0.12, 0.13),  # black
    (0.88, 0.88, 0.86),  # white
    (0.50, 0.50, 0.50),  # grey
    (0.75, 0.14, 0.14),  # red
    (0.16, 0.30, 0.72),  # blue
    (0.20, 0.52, 0.25),  # green
    (0.90, 0.78, 0.20),  # yellow
    (0.46, 0.30, 0.17),  # brown
    (0.12, 0.15, 0.36),  # navy
    (0.80, 0.70, 0.54),  # beige
    (0.92, 0.50, 0.12),  # orange
    (0.50, 0.22, 0.60),  # purple
], dtype=np.float32)
SKIN = np.array([(0.93, 0.76, 0.62), (0.78, 0.57, 0.42), (0.45, 0.30, 0.20)], dtype=np.float32)
HAIR = np.array([(0.08, 0.07, 0.06), (0.33, 0.21, 0.12), (0.80, 0.66, 0.38), (0.60, 0.60, 0.60)], dtype=np.float32)
NIR_LEVELS = np.array([0.12, 0.25, 0.40, 0.55, 0.70, 0.85], dtype=np.float32)

PLAIN, STRIPES, CHECKS, DOTS = 0, 1, 2, 3
TEXTURE_NAMES = ("plain", "stripes", "checks", "dots")

# Random-stream tags (first entries of every SeedSequence key): never reorder.
_T_IDENTITY, _T_SET, _T_CAMERA, _T_SCENE, _T_DISTRACTOR, _T_VIEW = 1, 2, 3, 4, 5, 6
_T_POSE, _T_PLACE, _T_BACKGROUND, _T_ILLUM, _T_NIGHT, _T_NOISE, _T_MISALIGN = 10, 11, 12, 13, 14, 15, 16
_SPLIT_CODE = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that defines a synthetic benchmark; the same spec gives byte-identical files."""

    seed: int = 0  # master seed of every random stream
    train_ids: int = 600  # identities of the train split (pids 1..train_ids); a from-scratch ViT needs many
    test_ids: int = 100  # identities of the test split (pids train_ids+1..train_ids+test_ids)
    cameras: int = 4  # cameras (1..9: the RGBNT201 name keeps one camera digit)
    per_camera: int = 2  # images per identity and camera
    height: int = 128  # image height (pixels)
    width: int = 64  # image width (pixels)
    vehicle_fraction: float = 0.3  # fraction of vehicle-like identities (the rest are person-like)
    palette_size: int = 8  # shared clothing / body colours (first N of PALETTE, 3..12)
    colour_sets: int = 16  # 3-colour sets shared by identities (0: every identity draws its own colours)
    scene_pool: int = 12  # background scenes shared by all identities
    scenes_per_camera: int = 3  # scenes each camera sees (drawn from the pool)
    distractor_pool: int = 16  # distractor objects shared by all identities
    viewpoint: float = 1.0  # side change probability + scale / position / pose jitter; 0 = front, fixed
    illumination: float = 1.0  # per-camera colour cast / brightness / gamma / gradient; 0 = none
    night: float = 0.25  # fraction of night images (dark, noisy RGB); 0 = none
    clutter: float = 1.0  # background texture, shapes and distractors (0..2); 0 = plain background
    misalign: float = 3.0  # max NIR / TIR shift relative to RGB in pixels; 0 = aligned (no scale jitter either)
    misalign_scale: float = 0.04  # max relative NIR / TIR scale change (only when misalign > 0)
    noise: float = 1.0  # Gaussian sensor noise level (sigma ~ 4/255 x level); 0 = none
    jpeg_quality: int = 95  # JPEG quality of every written image

    def __post_init__(self) -> None:
        checks = [
            (self.train_ids >= 1 and self.test_ids >= 1, "train_ids and test_ids must be >= 1"),
            (self.train_ids + self.test_ids <= 999_999, "at most 999999 identities (6-digit pids)"),
            (1 <= self.cameras <= 9, "cameras must be in 1..9 (one digit in the file name)"),
            (1 <= self.per_camera <= 999, "per_camera must be in 1..999"),
            (self.height >= 32 and self.width >= 16, "images must be at least 32 x 16 (H x W)"),
            (0.0 <= self.vehicle_fraction <= 1.0, "vehicle_fraction must be in [0, 1]"),
            (3 <= self.palette_size <= len(PALETTE), f"palette_size must be in 3..{len(PALETTE)}"),
            (self.colour_sets >= 0, "colour_sets must be >= 0"),
            (self.scene_pool >= 1 and 1 <= self.scenes_per_camera <= self.scene_pool,
             "need scene_pool >= 1 and 1 <= scenes_per_camera <= scene_pool"),
            (self.distractor_pool >= 1, "distractor_pool must be >= 1"),
            (0.0 <= self.night <= 1.0, "night must be in [0, 1]"),
            (0.0 <= self.clutter <= 2.0, "clutter must be in [0, 2]"),
            (min(self.viewpoint, self.illumination, self.misalign, self.misalign_scale, self.noise) >= 0,
             "difficulty levels must be >= 0"),
            (self.viewpoint <= 1.0, "viewpoint must be in [0, 1]"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must be in 1..100"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SyntheticSpec: {message}")

    def pids(self, split: str) -> range:
        """1-based identities of ``split`` ("train" or "test")."""
        if split == "train":
            return range(1, self.train_ids + 1)
        if split == "test":
            return range(self.train_ids + 1, self.train_ids + self.test_ids + 1)
        raise ValueError(f"unknown split {split!r}")

    def replace(self, **changes) -> "SyntheticSpec":
        return dataclasses.replace(self, **changes)


def image_name(pid: int, camera: int, index: int) -> str:
    """RGBNT201 file name ``PPPPPP_camK_III.jpg``; ``camera`` 0-based here, written 1-based."""
    return f"{pid:06d}_cam{camera + 1}_{index:03d}.jpg"


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(int(k) for k in key)]))


# ------------------------------------------------------------------------------------ identities
@dataclass(frozen=True)
class PartStyle:
    """Appearance of one part in the three modalities."""

    rgb: tuple  # main colour
    rgb2: tuple  # secondary (texture) colour
    tex: tuple  # (kind, angle rad, period px) of the RGB texture
    nir: float  # NIR reflectance
    nir2: float  # NIR secondary reflectance
    nir_tex: tuple  # NIR texture, independent of the RGB one
    heat: float  # TIR heat in [0, 1]


@dataclass(frozen=True)
class Identity:
    pid: int
    kind: str  # "person" or "vehicle"
    styles: dict  # part code -> PartStyle
    shape: dict  # geometry parameters
    blobs: tuple  # ((x, y, radius, amplitude), ...) in canonical normalised coordinates


# part codes (label values of the canonical render); drawing order is set by the draw functions
P_LEGS, P_SHOES, P_SLEEVES, P_SKIN, P_TORSO, P_LOGO, P_HAIR, P_HAT, P_BAG, P_STRAP = range(1, 11)
V_BODY, V_SECOND, V_GLASS, V_WHEEL, V_LIGHT, V_TAIL, V_PLATE, V_GRILLE, V_ROOFBOX, V_DECAL, V_BUMPER = range(1, 12)


def _texture(rng: np.random.Generator, p_plain: float, scale: float) -> tuple:
    kind = PLAIN if rng.random() < p_plain else int(rng.integers(1, 4))
    angle = float(rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4]))
    period = float(rng.uniform(3.0, 7.0) * scale)
    return (kind, angle, period)


def _colour_set(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.colour_sets > 0:
        group = int(rng.integers(spec.colour_sets))
        idx = _rng(spec.seed, _T_SET, group).choice(spec.palette_size, 3, replace=False)
        idx = idx[rng.permutation(3)]  # same colours, different arrangement over the parts
    else:
        idx = rng.choice(spec.palette_size, 3, replace=False)
    return PALETTE[idx]


def _style(rng, rgb, rgb2, tex, heat, nir=None, nir_tex=None) -> PartStyle:
    nir1 = float(rng.choice(NIR_LEVELS)) if nir is None else nir
    nir2 = float(np.clip(nir1 + rng.choice([-0.3, -0.2, 0.2, 0.3]), 0.05, 0.95))
    ntex = _texture(rng, 0.55, 1.0) if nir_tex is None else nir_tex
    return PartStyle(tuple(map(float, rgb)), tuple(map(float, rgb2)), tex, nir1, nir2, ntex, float(heat))


@lru_cache(maxsize=4096)
def make_identity(spec: SyntheticSpec, pid: int) -> Identity:
    """Appearance of identity ``pid``: a function of (seed, pid) and the appearance knobs only."""
    rng = _rng(spec.seed, _T_IDENTITY, pid)
    vehicle = rng.random() < spec.vehicle_fraction
    c = _colour_set(spec, rng)  # c[0] main, c[1] second, c[2] accent
    sc = spec.width / 64.0
    blobs = tuple((float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.25, 0.8)), float(rng.uniform(0.06, 0.14)),
                   float(rng.uniform(0.12, 0.3))) for _ in range(int(rng.integers(1, 4))))
    if not vehicle:
        skin = SKIN[rng.integers(len(SKIN))]
        hair = HAIR[rng.integers(len(HAIR))]
        torso_tex = _texture(rng, 0.4, sc)
        legs_tex = _texture(rng, 0.7, sc)
        shape = {
            "shoulder": float(rng.uniform(0.31, 0.37)), "hip": float(rng.uniform(0.22, 0.26)),
            "torso_bottom": float(rng.choice([0.52, 0.55, 0.66])), "leg_width": float(rng.uniform(0.19, 0.22)),
            "head": float(rng.uniform(0.13, 0.15)), "long_hair": bool(rng.random() < 0.35),
            "hat": bool(rng.random() < 0.25), "short_sleeves": bool(rng.random() < 0.35),
            "logo": bool(rng.random() < 0.4),
            "bag": str(rng.choice(["none", "shoulder", "backpack"], p=[0.4, 0.3, 0.3])),
            "bag_side": int(rng.choice([-1, 1])),
        }
        sleeves = c[0] if rng.random() < 0.7 else c[2]
        styles = {
            P_TORSO: _style(rng, c[0], c[2], torso_tex, rng.uniform(0.5, 0.75)),
            P_LEGS: _style(rng, c[1], c[2], legs_tex, rng.uniform(0.45, 0.7)),
            P_SLEEVES: _style(rng, sleeves, c[2], torso_tex, rng.uniform(0.5, 0.7)),
            P_SKIN: _style(rng, skin, skin, (PLAIN, 0, 1), rng.uniform(0.85, 0.97),
                           nir=float(rng.uniform(0.65, 0.8)), nir_tex=(PLAIN, 0, 1)),
            P_HAIR: _style(rng, hair, hair, (PLAIN, 0, 1), rng.uniform(0.55, 0.7)),
            P_SHOES: _style(rng, PALETTE[0] if rng.random() < 0.5 else c[2], c[2], (PLAIN, 0, 1), 0.35),
            P_LOGO: _style(rng, c[2], c[1], (int(rng.choice([PLAIN, DOTS])), 0.0, 3.0 * sc), rng.uniform(0.5, 0.7)),
            P_HAT: _style(rng, c[2], c[1], (PLAIN, 0, 1), rng.uniform(0.45, 0.6)),
            P_BAG: _style(rng, c[2] if rng.random() < 0.6 else c[1], c[0], _texture(rng, 0.6, sc),
                          rng.uniform(0.22, 0.35)),
            P_STRAP: _style(rng, PALETTE[0], PALETTE[0], (PLAIN, 0, 1), 0.3),
        }
        return Identity(pid, "person", styles, shape, blobs)
    engine_hot = bool(rng.random() < 0.6)
    shape = {
        "cabin_top": float(rng.choice([0.12, 0.22, 0.3])), "roof_box": bool(rng.random() < 0.3),
        "decal": bool(rng.random() < 0.5), "body_width": float(rng.uniform(0.84, 0.96)),
        "lights": int(rng.integers(2)),
    }
    body_tex = _texture(rng, 0.7, sc * 1.4)
    styles = {
        V_BODY: _style(rng, c[0], c[1], body_tex, rng.uniform(0.35, 0.55)),
        V_SECOND: _style(rng, c[1], c[2], (PLAIN, 0, 1), rng.uniform(0.35, 0.5)),
        V_GLASS: _style(rng, (0.15, 0.2, 0.26), (0.3, 0.35, 0.4), (STRIPES, math.pi / 4, 6.0 * sc), 0.2,
                        nir=0.08, nir_tex=(PLAIN, 0, 1)),
        V_WHEEL: _style(rng, (0.07, 0.07, 0.07), (0.3, 0.3, 0.3), (PLAIN, 0, 1), rng.uniform(0.6, 0.9), nir=0.15),
        V_LIGHT: _style(rng, (0.95, 0.95, 0.85), (0.95, 0.95, 0.85), (PLAIN, 0, 1), 0.6, nir=0.9,
                        nir_tex=(PLAIN, 0, 1)),
        V_TAIL: _style(rng, (0.85, 0.1, 0.1), (0.85, 0.1, 0.1), (PLAIN, 0, 1), 0.55, nir=0.5),
        V_PLATE: _style(rng, (0.92, 0.92, 0.9), (0.1, 0.1, 0.1), (STRIPES, 0.0, 2.5 * sc), 0.3, nir=0.95),
        V_GRILLE: _style(rng, (0.15, 0.15, 0.15), (0.4, 0.4, 0.4), (STRIPES, math.pi / 2, 2.5 * sc),
                         0.92 if engine_hot else 0.4),
        V_ROOFBOX: _style(rng, c[2], c[1], _texture(rng, 0.6, sc), 0.25),
        V_DECAL: _style(rng, c[2], c[1], _texture(rng, 0.5, sc), rng.uniform(0.35, 0.5)),
        V_BUMPER: _style(rng, c[1] if rng.random() < 0.5 else PALETTE[0], c[2], (PLAIN, 0, 1), 0.4),
    }
    return Identity(pid, "vehicle", styles, shape, blobs)


# ----------------------------------------------------------------------------- canonical render
@lru_cache(maxsize=16)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def _pattern(tex: tuple, xs: np.ndarray, ys: np.ndarray) -> Optional[np.ndarray]:
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


class _Canvas:
    """Label map drawn with normalised coordinates (x / W, y / H); sub-pixel precision."""

    SHIFT = 3

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.label = np.zeros((h, w), np.uint8)

    def _pts(self, pts) -> np.ndarray:
        arr = np.asarray(pts, np.float64) * (self.w, self.h) * (1 << self.SHIFT)
        return np.round(arr).astype(np.int32).reshape(-1, 1, 2)

    def poly(self, code: int, pts) -> None:
        cv2.fillPoly(self.label, [self._pts(pts)], int(code), cv2.LINE_8, self.SHIFT)

    def rect(self, code: int, x0, y0, x1, y1) -> None:
        self.poly(code, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])

    def ellipse(self, code: int, cx, cy, rx, ry, start=0.0, end=360.0) -> None:
        f = 1 << self.SHIFT
        cv2.ellipse(self.label, (round(cx * self.w * f), round(cy * self.h * f)),
                    (max(1, round(rx * self.w * f)), max(1, round(ry * self.h * f))), 0.0, start, end,
                    int(code), -1, cv2.LINE_8, self.SHIFT)

    def line(self, code: int, p0, p1, thickness: float) -> None:
        a, b = self._pts([p0, p1]).reshape(2, 2)
        cv2.line(self.label, tuple(map(int, a)), tuple(map(int, b)), int(code),
                 max(1, round(thickness * self.w)), cv2.LINE_8, self.SHIFT)


def _draw_person(cv: _Canvas, ident: Identity, view: str, pose: dict) -> None:
    s = ident.shape
    spread, swing = pose["spread"], pose["swing"]
    hip_y, ankle_y, sh_y = 0.53, 0.93, 0.185
    hw, sw, lw = s["hip"], s["shoulder"], s["leg_width"]
    side = view in ("left", "right")
    if side:
        sw, hw = sw * 0.75, hw * 0.8
    # legs (+ shoes); side view: scissor gait, front / back: legs apart
    for sign in (-1, 1):
        hx = 0.5 + sign * (0.0 if side else hw - lw / 2)
        ax = hx + sign * (spread * 0.14 if side else spread * 0.05 + 0.01)
        cv.poly(P_LEGS, [(hx - lw / 2, hip_y - 0.02), (hx + lw / 2, hip_y - 0.02),
                         (ax + lw * 0.4, ankle_y), (ax - lw * 0.4, ankle_y)])
        toe = -0.05 if (side and view == "left") else (0.05 if side else 0.0)
        cv.ellipse(P_SHOES, ax + toe * 0.6, ankle_y + 0.012, lw * 0.55 + abs(toe) * 0.4, 0.02)
    bag, bag_side = s["bag"], s["bag_side"]
    if view == "back":
        bag_side = -bag_side
    # torso
    tb = s["torso_bottom"]
    cv.poly(P_TORSO, [(0.5 - sw, sh_y), (0.5 + sw, sh_y), (0.5 + hw + 0.02, tb), (0.5 - hw - 0.02, tb)])
    # arms: sleeves (upper) + skin or sleeves (lower) + hands
    arms = (0,) if side else (-1, 1)
    for sign in arms:
        top_x = 0.5 + sign * (sw - 0.03)
        end_x = top_x + (swing * 0.12 if side else sign * (0.05 + 0.03 * abs(swing)))
        elbow = ((top_x + end_x) / 2, 0.34)
        lower = P_SKIN if s["short_sleeves"] else P_SLEEVES
        cv.line(P_SLEEVES, (top_x, sh_y + 0.03), elbow, 0.17)
        cv.line(lower, elbow, (end_x, 0.5), 0.15)
        cv.ellipse(P_SKIN, end_x, 0.515, 0.06, 0.025)
    if view == "front" and s["logo"]:
        cv.rect(P_LOGO, 0.42, 0.25, 0.58, 0.33)
    # bags: the backpack is seen from the back and the side, only its straps from the front;
    # the shoulder bag hangs on one side (hidden behind the body in one side view)
    if bag == "backpack":
        if view == "back":
            cv.rect(P_BAG, 0.5 - sw * 0.75, 0.22, 0.5 + sw * 0.75, 0.47)
        elif side:
            if view == "left":
                cv.rect(P_BAG, 0.5 + 0.1, 0.21, 0.5 + 0.27, 0.45)
        else:
            for sign in (-1, 1):
                cv.line(P_STRAP, (0.5 + sign * sw * 0.6, sh_y), (0.5 + sign * sw * 0.55, 0.42), 0.05)
    elif bag == "shoulder" and not (side and (bag_side > 0) == (view == "left")):
        bx = 0.5 + bag_side * (hw + 0.08) if not side else 0.5
        cv.line(P_STRAP, (0.5 - bag_side * sw * 0.7, sh_y), (bx, 0.5), 0.04)
        cv.rect(P_BAG, bx - 0.12, 0.47, bx + 0.12, 0.6)
    # head
    hx, hy, r = 0.5, 0.105, s["head"]
    ry = r * 0.62
    if view == "back":
        cv.ellipse(P_HAIR, hx, hy, r, ry)
        if s["long_hair"]:
            cv.rect(P_HAIR, hx - r, hy, hx + r, 0.2)
    else:
        if s["long_hair"]:
            cv.rect(P_HAIR, hx - r, hy, hx + r, 0.19)
        cv.ellipse(P_SKIN, hx, hy, r, ry)
        if side:  # hair on the back half of the head
            start, end = (-90.0, 90.0) if view == "left" else (90.0, 270.0)
            cv.ellipse(P_HAIR, hx, hy, r * 1.02, ry * 1.02, start, end)
            cv.ellipse(P_HAIR, hx, hy - ry * 0.3, r * 1.02, ry * 0.75, 180.0, 360.0)
        else:
            cv.ellipse(P_HAIR, hx, hy - ry * 0.15, r * 1.03, ry * 0.9, 180.0, 360.0)
    if s["hat"]:
        cv.ellipse(P_HAT, hx, hy - ry * 0.35, r * 1.1, ry * 0.75, 180.0, 360.0)
        brim = {"left": (-0.07, 0.0), "right": (0.0, 0.07)}.get(view, (-0.02, 0.02))
        cv.rect(P_HAT, hx - r * 1.1 + brim[0], hy - ry * 0.4, hx + r * 1.1 + brim[1], hy - ry * 0.25)


def _draw_vehicle(cv: _Canvas, ident: Identity, view: str, pose: dict) -> None:
    s = ident.shape
    ct = s["cabin_top"]
    if view in ("front", "back"):
        bw = s["body_width"] / 2
        # wheels peeking below the body, body, cabin, window, lights, plate, grille / rear details
        for sign in (-1, 1):
            cv.rect(V_WHEEL, 0.5 + sign * bw * 0.95 - 0.09, 0.78, 0.5 + sign * bw * 0.95 + 0.09, 0.93)
        if s["roof_box"]:
            cv.rect(V_ROOFBOX, 0.3, ct - 0.07, 0.7, ct + 0.01)
        cv.poly(V_BODY, [(0.5 - bw * 0.78, ct), (0.5 + bw * 0.78, ct), (0.5 + bw, 0.48), (0.5 - bw, 0.48)])
        cv.rect(V_BODY, 0.5 - bw, 0.47, 0.5 + bw, 0.84)
        glass_bottom = 0.45
        cv.poly(V_GLASS, [(0.5 - bw * 0.68, ct + 0.03), (0.5 + bw * 0.68, ct + 0.03),
                          (0.5 + bw * 0.88, glass_bottom), (0.5 - bw * 0.88, glass_bottom)])
        if s["decal"]:
            cv.rect(V_DECAL, 0.5 - bw, 0.5, 0.5 + bw, 0.55)
        cv.rect(V_BUMPER, 0.5 - bw, 0.77, 0.5 + bw, 0.84)
        light = V_LIGHT if view == "front" else V_TAIL
        lh = 0.05 if s["lights"] else 0.035
        for sign in (-1, 1):
            cv.rect(light, 0.5 + sign * bw * 0.62 - 0.1, 0.58, 0.5 + sign * bw * 0.62 + 0.1, 0.58 + lh)
        if view == "front":
            cv.rect(V_GRILLE, 0.5 - bw * 0.38, 0.58, 0.5 + bw * 0.38, 0.67)
        else:
            cv.rect(V_SECOND, 0.5 - bw * 0.4, 0.57, 0.5 + bw * 0.4, 0.65)
            cv.ellipse(V_GRILLE, 0.5 - bw * 0.6, 0.86, 0.06, 0.015)  # exhaust (hot)
        cv.rect(V_PLATE, 0.36, 0.69, 0.64, 0.75)
        return
    # side view (left = facing left): long body, cabin with two windows, two wheels
    flip = view == "right"
    def fx(x):  # mirror for the right view (only the geometry, textures are in canvas coordinates)
        return 1.0 - x if flip else x
    top = 0.22 + ct * 0.4
    if s["roof_box"]:
        cv.rect(V_ROOFBOX, fx(0.35), top - 0.05, fx(0.75), top + 0.005)
    cv.poly(V_BODY, [(fx(0.22), top), (fx(0.8), top), (fx(0.86), 0.5), (fx(0.14), 0.5)])
    cv.rect(V_BODY, fx(0.03), 0.49, fx(0.97), 0.8)
    cv.poly(V_GLASS, [(fx(0.26), top + 0.025), (fx(0.48), top + 0.025), (fx(0.48), 0.48), (fx(0.19), 0.48)])
    cv.poly(V_GLASS, [(fx(0.52), top + 0.025), (fx(0.77), top + 0.025), (fx(0.82), 0.48), (fx(0.52), 0.48)])
    if s["decal"]:
        cv.rect(V_DECAL, fx(0.03), 0.62, fx(0.97), 0.665)
    cv.rect(V_BUMPER, fx(0.01), 0.72, fx(0.1), 0.78)
    cv.rect(V_LIGHT, fx(0.03), 0.58, fx(0.1), 0.61)
    cv.rect(V_TAIL, fx(0.93), 0.58, fx(0.97), 0.62)
    for x in (0.22, 0.78):
        cv.ellipse(V_WHEEL, fx(x), 0.8, 0.16, 0.08)
        cv.ellipse(V_SECOND, fx(x), 0.8, 0.075, 0.037)


def _smooth_field(rng: np.random.Generator, h: int, w: int, cell: int, amplitude: float) -> np.ndarray:
    """Low-frequency random field (folds, shadows, stains) of about +-amplitude, float32 [h, w]."""
    coarse = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    return amplitude * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def render_object(ident: Identity, view: str, pose: dict, h: int, w: int,
                  rng: Optional[np.random.Generator] = None):
    """Canonical (object-filling) render: (rgb [h,w,3], nir [h,w], tir [h,w], alpha [h,w]) float32.

    ``rng`` adds per-image cloth folds / shading and fine grain (surfaces are not flat colours)."""
    cv = _Canvas(h, w)
    (_draw_person if ident.kind == "person" else _draw_vehicle)(cv, ident, view, pose)
    label = cv.label
    xs, ys = _grid(h, w)
    rgb = np.zeros((h, w, 3), np.float32)
    nir = np.zeros((h, w), np.float32)
    tir = np.zeros((h, w), np.float32)
    for code in np.unique(label):
        if code == 0:
            continue
        st: PartStyle = ident.styles[int(code)]
        m = label == code
        pat = _pattern(st.tex, xs, ys)
        rgb[m] = st.rgb if pat is None else np.where(pat[m][:, None], st.rgb2, st.rgb)
        npat = _pattern(st.nir_tex, xs, ys)
        nir[m] = st.nir if npat is None else np.where(npat[m], st.nir2, st.nir)
        tir[m] = st.heat
    alpha = (label > 0).astype(np.float32)
    # per-identity warm blobs (body heat, engine parts) inside the object, then thermal diffusion
    for bx, by, br, amp in ident.blobs:
        d2 = ((xs / w - bx) / br) ** 2 + ((ys / h - by) / (br * w / h)) ** 2
        tir += alpha * amp * np.exp(-d2)
    tir = cv2.GaussianBlur(tir, (0, 0), 1.2) * alpha
    # cylinder shading across the object (RGB and, weaker, NIR)
    shade = 1.0 - 0.22 * ((xs / w - 0.5) / 0.5) ** 2
    rgb *= shade[..., None]
    nir *= 1.0 - 0.5 * (1.0 - shade)
    if rng is not None:
        fold = _smooth_field(rng, h, w, 6, 0.07) + 0.025 * rng.standard_normal((h, w), np.float32)
        rgb *= (1.0 + fold)[..., None]
        nir *= 1.0 + 0.8 * fold
    return np.clip(rgb, 0, 1), np.clip(nir, 0, 1), np.clip(tir, 0, 1), alpha


# ----------------------------------------------------------------------------- backgrounds
def _draw3(layers, fn, rgb, nir, tir) -> None:
    """Draw the same shape into the RGB, NIR and TIR float layers with per-modality values."""
    fn(layers[0], tuple(float(v) for v in rgb))
    fn(layers[1], float(nir))
    fn(layers[2], float(tir))


@lru_cache(maxsize=64)
def _scene(spec_key: tuple, k: int):
    """Background scene ``k`` of the pool at clutter level ``spec_key[3]`` (rendered once, cached).

    Returns float32 (rgb [Hs,Ws,3], nir [Hs,Ws], tir [Hs,Ws]) larger than the image, to crop from.
    """
    seed, h, w, level, palette_size = spec_key
    hs, ws = int(h * 1.3), int(w * 2.0)
    rng = _rng(seed, _T_SCENE, k)
    plain = _plain_background()
    grey = rng.uniform(0.35, 0.65)  # mostly grey walls and ground with a tint from the palette
    wall = grey + 0.15 * (PALETTE[rng.integers(palette_size)] - PALETTE[rng.integers(palette_size)].mean())
    ground = rng.uniform(0.3, 0.5) + 0.1 * (PALETTE[rng.integers(palette_size)] - 0.5)
    horizon = int(hs * rng.uniform(0.45, 0.75))
    rgb = np.empty((hs, ws, 3), np.float32)
    rgb[:horizon], rgb[horizon:] = wall, ground
    nir = np.empty((hs, ws), np.float32)
    nir[:horizon], nir[horizon:] = rng.uniform(0.3, 0.55), rng.uniform(0.25, 0.45)
    tir = np.empty((hs, ws), np.float32)
    tir[:horizon], tir[horizon:] = rng.uniform(0.15, 0.25), rng.uniform(0.18, 0.28)
    layers = (rgb, nir, tir)
    xs, ys = _grid(hs, ws)
    # wall texture (bricks / panels) and ground tiles
    tex = _pattern((int(rng.integers(1, 3)), float(rng.choice([0, math.pi / 2])), float(rng.uniform(4, 12))), xs, ys)
    if tex is not None:
        upper = (ys < horizon) & tex
        rgb[upper] *= 0.8
        nir[upper] *= 0.75
    tiles = _pattern((CHECKS, float(rng.uniform(0, math.pi)), float(rng.uniform(8, 16))), xs, ys)
    lower = (ys >= horizon) & tiles
    rgb[lower] *= 0.85
    nir[lower] *= 0.85
    for _ in range(int(round(10 * level))):
        kind = rng.choice(["window", "pole", "bush", "lamp", "poster", "cable"])
        x, y = int(rng.integers(0, ws)), int(rng.integers(0, hs))
        col = PALETTE[rng.integers(palette_size)]
        if kind in ("window", "poster"):
            rw, rh = int(rng.integers(6, 22)), int(rng.integers(6, 26))
            heat = 0.45 if kind == "window" else 0.25
            _draw3(layers, lambda im, c: cv2.rectangle(im, (x, y), (x + rw, y + rh), c, -1),
                   col * 0.8 if kind == "poster" else (0.3, 0.38, 0.45), rng.choice(NIR_LEVELS), heat)
        elif kind == "pole":
            t, lean = int(rng.integers(2, 5)), int(rng.integers(-3, 4))
            _draw3(layers, lambda im, c: cv2.line(im, (x, 0), (x + lean, hs), c, t),
                   col * 0.7, rng.choice(NIR_LEVELS), 0.3)
        elif kind == "bush":
            r = int(rng.integers(6, 16))
            _draw3(layers, lambda im, c: cv2.ellipse(im, (x, max(y, horizon)), (r, int(r * 0.7)), 0, 0, 360, c, -1),
                   (0.15, 0.42, 0.15), 0.85, 0.35)
        elif kind == "lamp":
            r = int(rng.integers(2, 5))
            _draw3(layers, lambda im, c: cv2.circle(im, (x, min(y, horizon)), r, c, -1), (0.98, 0.92, 0.6), 0.9, 0.97)
        else:
            dy = int(rng.integers(-10, 10))
            _draw3(layers, lambda im, c: cv2.line(im, (0, y), (ws, y + dy), c, 1),
                   (0.1, 0.1, 0.1), 0.2, 0.2)
    light = 1.0 + _smooth_field(rng, hs, ws, 12, 0.08)  # shadows / stains
    rgb *= light[..., None]
    nir *= light
    contrast = min(level, 1.0)
    for layer, base in zip(layers, plain):
        layer *= contrast
        layer += (1.0 - contrast) * np.asarray(base, np.float32)
    return tuple(np.ascontiguousarray(l) for l in layers)


def _plain_background():
    return (np.array([0.5, 0.5, 0.5], np.float32), np.float32(0.4), np.float32(0.2))


def _camera_scenes(spec: SyntheticSpec, camera: int) -> np.ndarray:
    return _rng(spec.seed, _T_CAMERA, camera, 1).choice(spec.scene_pool, spec.scenes_per_camera, replace=False)


@lru_cache(maxsize=256)
def _distractor(seed: int, k: int, palette_size: int) -> dict:
    rng = _rng(seed, _T_DISTRACTOR, k)
    kind = str(rng.choice(["pole", "bin", "sign", "bike", "lamp", "car", "pedestrian", "pedestrian"]))
    return {"kind": kind, "c1": PALETTE[rng.integers(palette_size)], "c2": PALETTE[rng.integers(palette_size)],
            "n1": float(rng.choice(NIR_LEVELS)), "n2": float(rng.choice(NIR_LEVELS)),
            "heat": float(rng.uniform(0.55, 0.85)) if kind in ("pedestrian", "car") else float(rng.uniform(0.2, 0.4)),
            "size": float(rng.uniform(0.7, 1.1))}


def _draw_distractor(layers, d: dict, x: float, y: float, scale: float) -> None:
    """Distractor with its base at (x, y) pixels; ``scale`` in image heights."""
    s = scale * d["size"]
    xi, yi = int(round(x)), int(round(y))
    def r(v):
        return max(1, int(round(v * s)))
    k = d["kind"]
    c1, c2, n1, n2, heat = d["c1"], d["c2"], d["n1"], d["n2"], d["heat"]
    if k == "pole":
        _draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.02), yi - r(0.9)), (xi + r(0.02), yi), c, -1),
               c1 * 0.7, n1, heat)
    elif k == "bin":
        _draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.1), yi - r(0.28)), (xi + r(0.1), yi), c, -1), c1, n1, heat)
        _draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.12), yi - r(0.31)), (xi + r(0.12), yi - r(0.27)), c, -1),
               c2, n2, heat)
    elif k == "sign":
        _draw3(layers, lambda im, c: cv2.line(im, (xi, yi), (xi, yi - r(0.6)), c, max(1, r(0.02))), (0.4,) * 3, 0.3, 0.25)
        _draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.12), yi - r(0.75)), (xi + r(0.12), yi - r(0.55)), c, -1),
               c1, n1, 0.3)
    elif k == "bike":
        for dx in (-0.12, 0.12):
            _draw3(layers, lambda im, c: cv2.circle(im, (xi + int(round(dx * s)), yi - r(0.08)), r(0.08), c, 2),
                   (0.1,) * 3, 0.2, 0.3)
        _draw3(layers, lambda im, c: cv2.line(im, (xi - r(0.12), yi - r(0.08)), (xi + r(0.04), yi - r(0.22)), c, 2),
               c1, n1, 0.3)
        _draw3(layers, lambda im, c: cv2.line(im, (xi + r(0.12), yi - r(0.08)), (xi + r(0.04), yi - r(0.22)), c, 2),
               c1, n1, 0.3)
    elif k == "lamp":
        _draw3(layers, lambda im, c: cv2.line(im, (xi, yi), (xi, yi - r(0.8)), c, max(1, r(0.025))), (0.3,) * 3, 0.25, 0.3)
        _draw3(layers, lambda im, c: cv2.circle(im, (xi, yi - r(0.82)), r(0.05), c, -1), (0.98, 0.95, 0.7), 0.95, 0.98)
    elif k == "car":
        _draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.3), yi - r(0.22)), (xi + r(0.3), yi - r(0.05)), c, -1),
               c1, n1, heat * 0.7)
        for dx in (-0.18, 0.18):
            _draw3(layers, lambda im, c: cv2.circle(im, (xi + int(round(dx * s)), yi - r(0.05)), r(0.05), c, -1),
                   (0.08,) * 3, 0.15, heat)
    else:  # pedestrian silhouette (a non-target person, warm in TIR)
        _draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.06), yi - r(0.45)), (xi + r(0.06), yi), c, -1),
               c2, n2, heat * 0.85)
        _draw3(layers, lambda im, c: cv2.rectangle(im, (xi - r(0.09), yi - r(0.78)), (xi + r(0.09), yi - r(0.43)), c, -1),
               c1, n1, heat)
        _draw3(layers, lambda im, c: cv2.circle(im, (xi, yi - r(0.86)), r(0.07), c, -1), SKIN[1], 0.7, 0.95)


# ----------------------------------------------------------------------------------- one frame
@dataclass
class Frame:
    """One rendered triple (before JPEG) with its object masks and metadata."""

    rgb: np.ndarray  # [H, W, 3] uint8, RGB order
    nir: np.ndarray  # [H, W] uint8
    tir: np.ndarray  # [H, W] uint8
    masks: np.ndarray  # [3, H, W] float32 object coverage in the RGB / NIR / TIR frames
    meta: dict


def _camera_params(spec: SyntheticSpec, camera: int) -> dict:
    rng = _rng(spec.seed, _T_CAMERA, camera, 0)
    return {"gain": rng.uniform(-0.08, 0.08, 3), "bright": rng.uniform(-0.12, 0.08), "gamma": rng.uniform(-0.12, 0.12),
            "grad": rng.uniform(-0.2, 0.2, 2), "nir_gain": rng.uniform(-0.04, 0.04),
            "tir_offset": rng.uniform(-0.02, 0.02)}


def view_of(spec: SyntheticSpec, split: str, pid: int, camera: int) -> str:
    """The side from which ``camera`` sees identity ``pid`` (same for all its images there)."""
    rng = _rng(spec.seed, _T_VIEW, _SPLIT_CODE[split], pid, camera)
    u, v = rng.random(), int(rng.integers(len(VIEWS)))
    return VIEWS[v] if u < spec.viewpoint else "front"


def _object_matrix(spec: SyntheticSpec, rng: np.random.Generator, kind: str) -> tuple[np.ndarray, float]:
    h, w, L = spec.height, spec.width, spec.viewpoint
    scale = 1.0 * (1.0 + L * rng.uniform(-0.08, 0.02))
    dx, dy = L * rng.uniform(-0.1, 0.1) * w, L * rng.uniform(-0.04, 0.05) * h
    shear = L * rng.uniform(-0.08, 0.08)
    cx, cy = w / 2, h / 2
    m = np.array([[scale, scale * shear, 0.0], [0.0, scale, 0.0]])
    m[:, 2] = (cx + dx, cy + dy) - m[:, :2] @ (cx, cy)
    return m, scale


def _misalign_matrix(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(-1, 1, 2) * spec.misalign
    s = 1.0 + rng.uniform(-1, 1) * spec.misalign_scale if spec.misalign > 0 else 1.0
    cx, cy = spec.width / 2, spec.height / 2
    return np.array([[s, 0.0, cx - s * cx + t[0]], [0.0, s, cy - s * cy + t[1]]])


def _warp(img: np.ndarray, m: np.ndarray, w: int, h: int, border=cv2.BORDER_CONSTANT) -> np.ndarray:
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)


def render_frame(spec: SyntheticSpec, split: str, pid: int, camera: int, index: int) -> Frame:
    """Render image ``index`` of identity ``pid`` by ``camera`` (0-based); pure function of its arguments."""
    h, w = spec.height, spec.width
    key = (_SPLIT_CODE[split], pid, camera, index)
    ident = make_identity(spec, pid)
    view = view_of(spec, split, pid, camera)

    # pose and placement
    rp = _rng(spec.seed, _T_POSE, *key)
    pose = {"spread": spec.viewpoint * float(rp.uniform(0.2, 1.0)), "swing": spec.viewpoint * float(rp.uniform(-1, 1))}
    if spec.viewpoint == 0:  # fixed pose, and the same cloth folds in every image of the identity
        pose = {"spread": 0.3, "swing": 0.0}
        rp = _rng(spec.seed, _T_POSE, _SPLIT_CODE[split], pid)
    obj_rgb, obj_nir, obj_tir, obj_a = render_object(ident, view, pose, h, w, rp)
    m_obj, _ = _object_matrix(spec, _rng(spec.seed, _T_PLACE, *key), ident.kind)
    obj4 = _warp(np.dstack([obj_rgb, obj_a]), m_obj, w, h)
    objt = _warp(np.dstack([obj_nir, obj_tir, obj_a]), m_obj, w, h)
    alpha = obj4[..., 3]

    # background: a scene of this camera (crop) + distractors from the shared pool
    rb = _rng(spec.seed, _T_BACKGROUND, *key)
    scenes = _camera_scenes(spec, camera)
    scene_k = int(scenes[rb.integers(len(scenes))])
    ox, oy = rb.random(), rb.random()
    bg_jit = rb.uniform(-0.08, 0.08, 5)
    n_slots = 4
    slots = [(rb.random(), rb.uniform(0, w), rb.uniform(0.55, 1.05) * h, rb.uniform(0.5, 0.9), rb.random(),
              int(rb.integers(spec.distractor_pool))) for _ in range(n_slots)]
    if spec.clutter > 0:
        srgb, snir, stir = _scene((spec.seed, h, w, float(spec.clutter), spec.palette_size), scene_k)
        y0, x0 = int(oy * (srgb.shape[0] - h)), int(ox * (srgb.shape[1] - w))
        rgb, nir, tir = (a[y0:y0 + h, x0:x0 + w].copy() for a in (srgb, snir, stir))
        bg_jit = min(spec.clutter, 1.0) * bg_jit  # per-image lighting of the scene (weather, time of day)
        rgb *= (1.0 + bg_jit[:3]).astype(np.float32)
        nir *= np.float32(1.0 + bg_jit[3])
        tir += np.float32(0.25 * bg_jit[4])
    else:
        base = _plain_background()
        rgb = np.empty((h, w, 3), np.float32)
        rgb[:] = base[0]
        nir = np.full((h, w), base[1], np.float32)
        tir = np.full((h, w), base[2], np.float32)
    layers = (rgb, nir, tir)
    p_present = min(1.0, 0.3 * spec.clutter)
    front = []
    for u, x, y, sc, u_front, k in slots:
        if u >= p_present:
            continue
        d = _distractor(spec.seed, k, spec.palette_size)
        if u_front < 0.3:  # occluder: in front of the object, kept near the sides / bottom
            front.append((d, (x * 0.25 if x < w / 2 else w - (w - x) * 0.25), max(y, 0.95 * h), sc * h * 0.6))
        else:
            _draw_distractor(layers, d, x, y, sc * h)
    a3 = alpha[..., None]
    rgb = rgb * (1 - a3) + obj4[..., :3] * a3
    nir = nir * (1 - alpha) + objt[..., 0] * alpha
    tir = tir * (1 - alpha) + objt[..., 1] * alpha
    layers = (rgb, nir, tir)
    occl = np.zeros((h, w), np.float32)
    for d, x, y, s in front:
        _draw_distractor(layers, d, x, y, s)
        _draw_distractor((np.zeros((h, w, 3), np.float32), occl, np.zeros((h, w), np.float32)),
                         {**d, "n1": 1.0, "n2": 1.0}, x, y, s)
    alpha = alpha * (1.0 - np.minimum(occl, 1.0))

    # illumination (RGB: camera colour cast, brightness, gamma, gradient; NIR gain; TIR offset)
    L = spec.illumination
    cam = _camera_params(spec, camera)
    ri = _rng(spec.seed, _T_ILLUM, *key)
    jit = ri.uniform(-0.05, 0.05, 4)
    xs, ys = _grid(h, w)
    grad = 1.0 + L * (cam["grad"][0] * (xs / w - 0.5) + cam["grad"][1] * (ys / h - 0.5))
    gain = (1.0 + L * (cam["gain"] + jit[:3])) * (1.0 + L * (cam["bright"] + jit[3]))
    rgb = np.clip(rgb * gain.astype(np.float32) * grad[..., None], 0, 1) ** float(math.exp(L * cam["gamma"]))
    nir = nir * float(1.0 + L * cam["nir_gain"])
    tir = tir + float(L * cam["tir_offset"])

    # night: dark, blue-cast, noisy RGB; NIR (active illumination) and TIR unchanged
    rn = _rng(spec.seed, _T_NIGHT, *key)
    u_night, dark, night_sigma = rn.random(), rn.uniform(0.14, 0.26), rn.uniform(0.025, 0.04)
    night = bool(u_night < spec.night)
    if night:
        rgb = rgb * (dark * np.array([0.75, 0.85, 1.2], np.float32))
        rgb = rgb + rn.normal(0, night_sigma, rgb.shape).astype(np.float32)

    # NIR / TIR misalignment relative to RGB (whole frame, independent per image and modality)
    rm = _rng(spec.seed, _T_MISALIGN, *key)
    m_nir, m_tir = _misalign_matrix(spec, rm), _misalign_matrix(spec, rm)
    masks = np.stack([alpha, alpha, alpha]).astype(np.float32)
    if spec.misalign > 0:
        nir = _warp(nir.astype(np.float32), m_nir, w, h, cv2.BORDER_REFLECT)
        tir = _warp(tir.astype(np.float32), m_tir, w, h, cv2.BORDER_REFLECT)
        masks[1] = _warp(alpha, m_nir, w, h)
        masks[2] = _warp(alpha, m_tir, w, h)
    tir = cv2.GaussianBlur(tir.astype(np.float32), (0, 0), 0.8)  # thermal optics are blurry

    # sensor noise
    rs = _rng(spec.seed, _T_NOISE, *key)
    noise = [rs.standard_normal((h, w, 3), np.float32), rs.standard_normal((h, w), np.float32),
             rs.standard_normal((h, w), np.float32)]
    if spec.noise > 0:
        rgb = rgb + noise[0] * (0.016 * spec.noise)
        nir = nir + noise[1] * (0.018 * spec.noise)
        tir = tir + noise[2] * (0.012 * spec.noise)

    def q(a):
        return np.clip(np.rint(np.asarray(a, np.float32) * 255.0), 0, 255).astype(np.uint8)

    meta = {"view": view, "kind": ident.kind, "night": night, "scene": scene_k if spec.clutter > 0 else -1,
            "nir_shift": [round(float(m_nir[0, 2] - (1 - m_nir[0, 0]) * w / 2), 2),
                          round(float(m_nir[1, 2] - (1 - m_nir[1, 1]) * h / 2), 2)] if spec.misalign > 0 else [0.0, 0.0],
            "tir_shift": [round(float(m_tir[0, 2] - (1 - m_tir[0, 0]) * w / 2), 2),
                          round(float(m_tir[1, 2] - (1 - m_tir[1, 1]) * h / 2), 2)] if spec.misalign > 0 else [0.0, 0.0]}
    return Frame(q(rgb), q(nir), q(tir), masks, meta)


# ----------------------------------------------------------------------------------- generation
def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB ``[H,W,3]`` or grey ``[H,W]`` uint8 image (deterministic)."""
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    return buf.tobytes()


def _prepare_out(out_dir: Path, overwrite: bool) -> None:
    owned = [out_dir / d for d in SPLIT_DIRS.values()] + [out_dir / "synthetic.json"]
    if any(p.exists() for p in owned):
        if not overwrite:
            raise FileExistsError(f"'{out_dir}' already holds a dataset (train_171/, test/ or synthetic.json); "
                                  "pass overwrite=True (--overwrite) to replace a generated one")
        if not (out_dir / "synthetic.json").is_file():
            raise FileExistsError(f"'{out_dir}' holds train_171/ or test/ but no synthetic.json: not a generated "
                                  "benchmark, refusing to delete it")
        (out_dir / "synthetic.json").unlink()
        for d in owned[:-1]:
            shutil.rmtree(d, ignore_errors=True)


def generate(spec: SyntheticSpec, out_dir: str | Path, progress: bool = True, overwrite: bool = False) -> dict:
    """Write the benchmark of ``spec`` into ``out_dir`` (RGBNT201 layout + synthetic.json).

    Returns:
        A summary: counts, bytes written, seconds, night images, views.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _prepare_out(out_dir, overwrite)
    jobs = [(split, pid, cam, i) for split in ("train", "test") for pid in spec.pids(split)
            for cam in range(spec.cameras) for i in range(spec.per_camera)]
    for split in SPLIT_DIRS.values():
        for mod in MODALITY_DIRS:
            (out_dir / split / mod).mkdir(parents=True, exist_ok=True)
    try:
        from tqdm.auto import tqdm
        it = tqdm(jobs, desc="synthetic", unit="triple", disable=not progress)
    except ImportError:  # pragma: no cover
        it = jobs
    start = time.perf_counter()
    frames, total_bytes = {}, 0
    for split, pid, cam, i in it:
        fr = render_frame(spec, split, pid, cam, i)
        name = image_name(pid, cam, i)
        for mod, img in zip(MODALITY_DIRS, (fr.rgb, fr.nir, fr.tir)):
            data = encode_jpeg(img, spec.jpeg_quality)
            (out_dir / SPLIT_DIRS[split] / mod / name).write_bytes(data)
            total_bytes += len(data)
        frames[f"{SPLIT_DIRS[split]}/{name}"] = fr.meta
    seconds = time.perf_counter() - start
    metas = list(frames.values())
    summary = {
        "train_ids": spec.train_ids, "test_ids": spec.test_ids, "cameras": spec.cameras,
        "train_triples": spec.train_ids * spec.cameras * spec.per_camera,
        "test_triples": spec.test_ids * spec.cameras * spec.per_camera,
        "night_images": sum(m["night"] for m in metas),
        "vehicle_ids": sum(make_identity(spec, p).kind == "vehicle" for s in ("train", "test") for p in spec.pids(s)),
        "views": {v: sum(m["view"] == v for m in metas) for v in VIEWS},
        "image_bytes": total_bytes,
    }
    payload = {"generator": GENERATOR, "version": GENERATOR_VERSION, "spec": dataclasses.asdict(spec),
               "layout": "RGBNT201", "summary": summary, "frames": frames}
    write_json(out_dir / "synthetic.json", payload, indent=1, sort_keys=True)
    return {**summary, "seconds": seconds, "out_dir": str(out_dir)}


def read_spec(data_root: str | Path) -> SyntheticSpec:
    """The spec stored in ``data_root/synthetic.json``."""
    payload = json.loads((Path(data_root) / "synthetic.json").read_text())
    return SyntheticSpec(**payload["spec"])


# ------------------------------------------------------------------------------ demo assets / sheet
def export_demo_assets(data_root: str | Path, out_dir: str | Path, num_ids: int = 30, query_camera: Optional[int] = None,
                       overwrite: bool = True) -> dict:
    """Small query / gallery folders from the TEST split of a generated (or any RGBNT201-layout) set.

    ``num_ids`` identities, evenly spaced over the sorted test ids; per identity one query triple
    (the first image of ``query_camera`` (1-based), default its first camera) and all its other
    triples in the gallery. Writes ``out_dir/{query,gallery}/{RGB,NI,TI}/<original name>`` and
    ``out_dir/demo.json``.

    Returns:
        {"ids", "query", "gallery", "bytes", "out_dir"}.
    """
    from signal_core.data import load_dataset

    data_root, out_dir = Path(data_root), Path(out_dir)
    test = load_dataset("rgbnt201", data_root).gallery
    pids = sorted({r.pid for r in test})
    if not 1 <= num_ids <= len(pids):
        raise ValueError(f"num_ids must be in 1..{len(pids)} (test identities), got {num_ids}")
    chosen = sorted({pids[int(round(i))] for i in np.linspace(0, len(pids) - 1, num_ids)})
    for sub in ("query", "gallery"):
        if (out_dir / sub).exists():
            if not overwrite:
                raise FileExistsError(f"'{out_dir / sub}' exists")
            shutil.rmtree(out_dir / sub)
    by_pid: dict[int, list] = {}
    for r in sorted(test, key=lambda r: Path(r.paths[0]).name):
        by_pid.setdefault(r.pid, []).append(r)
    queries, gallery = [], []
    for pid in chosen:
        recs = by_pid[pid]
        cams = sorted({r.camid for r in recs})
        cam = cams[0] if query_camera is None or (query_camera - 1) not in cams else query_camera - 1
        q = next(r for r in recs if r.camid == cam)
        queries.append(q)
        gallery.extend(r for r in recs if r is not q)
    total = 0
    for sub, recs in (("query", queries), ("gallery", gallery)):
        for mod in MODALITY_DIRS:
            (out_dir / sub / mod).mkdir(parents=True, exist_ok=True)
        for r in recs:
            for mod, src in zip(MODALITY_DIRS, r.paths):
                dst = out_dir / sub / mod / Path(src).name
                shutil.copyfile(src, dst)
                total += dst.stat().st_size
    spec_file = Path(data_root) / "synthetic.json"  # record the benchmark's spec, not a machine path
    source = ({"synthetic_spec": dataclasses.asdict(read_spec(data_root))} if spec_file.is_file()
              else {"dataset_folder": Path(data_root).name})
    manifest = {"source": source, "ids": chosen, "query": [Path(r.paths[0]).name for r in queries],
                "gallery": [Path(r.paths[0]).name for r in gallery]}
    write_json(out_dir / "demo.json", manifest, indent=1, sort_keys=True)
    total += (out_dir / "demo.json").stat().st_size
    return {"ids": len(chosen), "query": len(queries), "gallery": len(gallery), "bytes": total, "out_dir": str(out_dir)}


def contact_sheet(spec: SyntheticSpec, out_png: str | Path, pids: Optional[Sequence[int]] = None,
                  cameras: Sequence[int] = (0, 1), zoom: int = 2) -> Path:
    """PNG grid: one row per identity, for each camera the RGB | NIR | TIR images side by side
    (rendered directly, not read from disk), plus a row of night renders of the first identity."""
    if pids is None:  # two person-like and two vehicle-like test identities where there are some
        test = list(spec.pids("test"))
        people = [p for p in test if make_identity(spec, p).kind == "person"]
        cars = [p for p in test if make_identity(spec, p).kind == "vehicle"]
        pids = (people[:2] + cars[:2] + test)[:4] if cars else test[:4]
    h = spec.height
    gap = 4
    rows = []
    for pid in pids:
        cells = []
        for cam in cameras:
            fr = render_frame(spec, "test" if pid > spec.train_ids else "train", pid, cam % spec.cameras, 0)
            cells += [fr.rgb, *(np.repeat(g[..., None], 3, 2) for g in (fr.nir, fr.tir))]
            cells.append(np.full((h, gap, 3), 255, np.uint8))
        rows.append(np.hstack(cells[:-1]))
    night = spec.replace(night=1.0)
    cells = []
    for cam in cameras:
        fr = render_frame(night, "test" if pids[0] > spec.train_ids else "train", pids[0], cam % spec.cameras, 0)
        cells += [fr.rgb, *(np.repeat(g[..., None], 3, 2) for g in (fr.nir, fr.tir)), np.full((h, gap, 3), 255, np.uint8)]
    rows.append(np.hstack(cells[:-1]))
    sheet = np.vstack([np.vstack([r, np.full((gap, r.shape[1], 3), 255, np.uint8)]) for r in rows])
    sheet = cv2.resize(sheet, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return out_png


# ------------------------------------------------------------------------------------------- CLI
def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def parse_args(argv=None) -> argparse.Namespace:
    d = SyntheticSpec()
    p = argparse.ArgumentParser(prog="python -m train.synthetic",
                                description="Generate the procedural RGB / NIR / TIR ReID benchmark (RGBNT201 layout). "
                                            "Every difficulty level 0 disables that difficulty.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (gets train_171/, test/, synthetic.json)")
    p.add_argument("--overwrite", action="store_true", help="replace a benchmark previously generated in --out")
    p.add_argument("--seed", type=int, default=d.seed, help="master seed")
    p.add_argument("--train-ids", type=int, default=d.train_ids, help="train identities")
    p.add_argument("--test-ids", type=int, default=d.test_ids, help="test identities")
    p.add_argument("--cameras", type=int, default=d.cameras, help="cameras (1..9)")
    p.add_argument("--per-camera", type=int, default=d.per_camera, help="images per identity and camera")
    p.add_argument("--height", type=int, default=d.height, help="image height")
    p.add_argument("--width", type=int, default=d.width, help="image width")
    p.add_argument("--vehicle-fraction", type=float, default=d.vehicle_fraction, help="fraction of vehicle identities")
    p.add_argument("--palette-size", type=int, default=d.palette_size, help="shared colours (3..12)")
    p.add_argument("--colour-sets", type=int, default=d.colour_sets,
                   help="3-colour sets shared by identities (0: free colours per identity)")
    p.add_argument("--viewpoint", type=float, default=d.viewpoint,
                   help="[0,1] probability of a random side per camera + scale/position/pose jitter")
    p.add_argument("--illumination", type=float, default=d.illumination,
                   help="per-camera RGB colour cast / brightness / gamma / gradient strength")
    p.add_argument("--night", type=float, default=d.night, help="[0,1] fraction of night images (dark noisy RGB)")
    p.add_argument("--clutter", type=float, default=d.clutter,
                   help="[0,2] background scenes and distractor objects (0: plain background)")
    p.add_argument("--misalign", type=float, default=d.misalign, help="max NIR/TIR shift vs RGB (pixels)")
    p.add_argument("--misalign-scale", type=float, default=d.misalign_scale,
                   help="max relative NIR/TIR scale change (used when --misalign > 0)")
    p.add_argument("--noise", type=float, default=d.noise, help="sensor noise level")
    p.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality, help="JPEG quality")
    p.add_argument("--demo-assets", metavar="OUT", help="also export query/gallery demo folders from the test split")
    p.add_argument("--demo-ids", type=int, default=30, help="identities in the demo export")
    p.add_argument("--sheet", metavar="PNG", help="also write a contact sheet of a few test identities")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def spec_from_args(args: argparse.Namespace) -> SyntheticSpec:
    names = {f.name for f in dataclasses.fields(SyntheticSpec)}
    return SyntheticSpec(**{k: v for k, v in vars(args).items() if k in names})


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        spec = spec_from_args(args)
        summary = generate(spec, args.out, progress=not args.no_progress, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = _dir_bytes(Path(args.out))
    print(f"wrote {summary['train_triples']} train + {summary['test_triples']} test triples "
          f"({summary['train_ids']} + {summary['test_ids']} ids, {summary['cameras']} cameras, "
          f"{summary['vehicle_ids']} vehicles, {summary['night_images']} night) to {args.out}: "
          f"{size / 2**20:.1f} MiB in {summary['seconds']:.1f} s")
    if args.demo_assets:
        demo = export_demo_assets(args.out, args.demo_assets, num_ids=args.demo_ids)
        print(f"demo assets: {demo['ids']} ids, {demo['query']} queries, {demo['gallery']} gallery triples, "
              f"{demo['bytes'] / 2**20:.2f} MiB in {demo['out_dir']}")
    if args.sheet:
        print(f"contact sheet: {contact_sheet(spec, args.sheet)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
