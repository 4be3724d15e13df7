"""Identities: per-part colours, textures, NIR reflectances, heat and shape, a function of (seed, pid)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .palette import DOTS, HAIR, NIR_LEVELS, PALETTE, PLAIN, SKIN, STRIPES
from .spec import SyntheticSpec
from .streams import T_IDENTITY, T_SET, stream


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
    """One identity: its kind, part styles, shape parameters and warm TIR blobs."""

    pid: int
    kind: str  # "person" or "vehicle"
    styles: dict  # part code -> PartStyle
    shape: dict  # geometry parameters
    blobs: tuple  # ((x, y, radius, amplitude), ...) in canonical normalised coordinates


# part codes (label values of the canonical render); drawing order is set by the draw functions
P_LEGS, P_SHOES, P_SLEEVES, P_SKIN, P_TORSO, P_LOGO, P_HAIR, P_HAT, P_BAG, P_STRAP = range(1, 11)
V_BODY, V_SECOND, V_GLASS, V_WHEEL, V_LIGHT, V_TAIL, V_PLATE, V_GRILLE, V_ROOFBOX, V_DECAL, V_BUMPER = range(1, 12)
_FLAT = (PLAIN, 0, 1)  # plain texture


def _texture(rng: np.random.Generator, p_plain: float, scale: float) -> tuple:
    kind = PLAIN if rng.random() < p_plain else int(rng.integers(1, 4))
    angle = float(rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4]))
    period = float(rng.uniform(3.0, 7.0) * scale)
    return (kind, angle, period)


def _colour_set(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.colour_sets > 0:
        group = int(rng.integers(spec.colour_sets))
        idx = stream(spec.seed, T_SET, group).choice(spec.palette_size, 3, replace=False)
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
    rng = stream(spec.seed, T_IDENTITY, pid)
    vehicle = rng.random() < spec.vehicle_fraction
    c = _colour_set(spec, rng)  # c[0] main, c[1] second, c[2] accent
    sc = spec.width / 64.0
    blobs = tuple((float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.25, 0.8)), float(rng.uniform(0.06, 0.14)),
                   float(rng.uniform(0.12, 0.3))) for _ in range(int(rng.integers(1, 4))))
    if not vehicle:
        styles, shape = _person(rng, c, sc)
        return Identity(pid, "person", styles, shape, blobs)
    styles, shape = _vehicle(rng, c, sc)
    return Identity(pid, "vehicle", styles, shape, blobs)


def _person(rng: np.random.Generator, c: np.ndarray, sc: float) -> tuple[dict, dict]:
    """(styles, shape) of a person-like identity with colour set ``c`` (draws continue ``rng``)."""
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
        P_SKIN: _style(rng, skin, skin, _FLAT, rng.uniform(0.85, 0.97),
                       nir=float(rng.uniform(0.65, 0.8)), nir_tex=_FLAT),
        P_HAIR: _style(rng, hair, hair, _FLAT, rng.uniform(0.55, 0.7)),
        P_SHOES: _style(rng, PALETTE[0] if rng.random() < 0.5 else c[2], c[2], _FLAT, 0.35),
        P_LOGO: _style(rng, c[2], c[1], (int(rng.choice([PLAIN, DOTS])), 0.0, 3.0 * sc), rng.uniform(0.5, 0.7)),
        P_HAT: _style(rng, c[2], c[1], _FLAT, rng.uniform(0.45, 0.6)),
        P_BAG: _style(rng, c[2] if rng.random() < 0.6 else c[1], c[0], _texture(rng, 0.6, sc),
                      rng.uniform(0.22, 0.35)),
        P_STRAP: _style(rng, PALETTE[0], PALETTE[0], _FLAT, 0.3),
    }
    return styles, shape


def _vehicle(rng: np.random.Generator, c: np.ndarray, sc: float) -> tuple[dict, dict]:
    """(styles, shape) of a vehicle-like identity with colour set ``c`` (draws continue ``rng``)."""
    engine_hot = bool(rng.random() < 0.6)
    shape = {
        "cabin_top": float(rng.choice([0.12, 0.22, 0.3])), "roof_box": bool(rng.random() < 0.3),
        "decal": bool(rng.random() < 0.5), "body_width": float(rng.uniform(0.84, 0.96)),
        "lights": int(rng.integers(2)),
    }
    body_tex = _texture(rng, 0.7, sc * 1.4)
    styles = {
        V_BODY: _style(rng, c[0], c[1], body_tex, rng.uniform(0.35, 0.55)),
        V_SECOND: _style(rng, c[1], c[2], _FLAT, rng.uniform(0.35, 0.5)),
        V_GLASS: _style(rng, (0.15, 0.2, 0.26), (0.3, 0.35, 0.4), (STRIPES, math.pi / 4, 6.0 * sc), 0.2,
                        nir=0.08, nir_tex=_FLAT),
        V_WHEEL: _style(rng, (0.07, 0.07, 0.07), (0.3, 0.3, 0.3), _FLAT, rng.uniform(0.6, 0.9), nir=0.15),
        V_LIGHT: _style(rng, (0.95, 0.95, 0.85), (0.95, 0.95, 0.85), _FLAT, 0.6, nir=0.9, nir_tex=_FLAT),
        V_TAIL: _style(rng, (0.85, 0.1, 0.1), (0.85, 0.1, 0.1), _FLAT, 0.55, nir=0.5),
        V_PLATE: _style(rng, (0.92, 0.92, 0.9), (0.1, 0.1, 0.1), (STRIPES, 0.0, 2.5 * sc), 0.3, nir=0.95),
        V_GRILLE: _style(rng, (0.15, 0.15, 0.15), (0.4, 0.4, 0.4), (STRIPES, math.pi / 2, 2.5 * sc),
                         0.92 if engine_hot else 0.4),
        V_ROOFBOX: _style(rng, c[2], c[1], _texture(rng, 0.6, sc), 0.25),
        V_DECAL: _style(rng, c[2], c[1], _texture(rng, 0.5, sc), rng.uniform(0.35, 0.5)),
        V_BUMPER: _style(rng, c[1] if rng.random() < 0.5 else PALETTE[0], c[2], _FLAT, 0.4),
    }
    return styles, shape
