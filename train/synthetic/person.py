"""Person-like identities drawn into a label canvas (legs, torso, arms, logo, bag, head, hat)."""
from __future__ import annotations

from .canvas import Canvas
from .identity import (
    P_BAG,
    P_HAIR,
    P_HAT,
    P_LEGS,
    P_LOGO,
    P_SHOES,
    P_SKIN,
    P_SLEEVES,
    P_STRAP,
    P_TORSO,
    Identity,
)

HIP_Y, ANKLE_Y, SHOULDER_Y = 0.53, 0.93, 0.185  # normalised heights of hips, ankles and shoulders


def draw_person(cv: Canvas, ident: Identity, view: str, pose: dict) -> None:
    """Draw ``ident`` seen from ``view`` with ``pose`` ({"spread", "swing"}); later parts cover earlier ones."""
    s = ident.shape
    hw, sw = s["hip"], s["shoulder"]
    side = view in ("left", "right")
    if side:
        sw, hw = sw * 0.75, hw * 0.8
    _legs(cv, s["leg_width"], hw, view, pose["spread"])
    tb = s["torso_bottom"]
    cv.poly(P_TORSO, [(0.5 - sw, SHOULDER_Y), (0.5 + sw, SHOULDER_Y), (0.5 + hw + 0.02, tb), (0.5 - hw - 0.02, tb)])
    _arms(cv, sw, side, pose["swing"], s["short_sleeves"])
    if view == "front" and s["logo"]:
        cv.rect(P_LOGO, 0.42, 0.25, 0.58, 0.33)
    bag_side = -s["bag_side"] if view == "back" else s["bag_side"]
    _bag(cv, s["bag"], bag_side, sw, hw, view)
    _head(cv, s["head"], s["long_hair"], view)
    if s["hat"]:
        _hat(cv, s["head"], view)


def _legs(cv: Canvas, lw: float, hw: float, view: str, spread: float) -> None:
    """Legs and shoes; side view: scissor gait, front / back: legs apart."""
    side = view in ("left", "right")
    for sign in (-1, 1):
        hx = 0.5 + sign * (0.0 if side else hw - lw / 2)
        ax = hx + sign * (spread * 0.14 if side else spread * 0.05 + 0.01)
        cv.poly(P_LEGS, [(hx - lw / 2, HIP_Y - 0.02), (hx + lw / 2, HIP_Y - 0.02),
                         (ax + lw * 0.4, ANKLE_Y), (ax - lw * 0.4, ANKLE_Y)])
        toe = -0.05 if (side and view == "left") else (0.05 if side else 0.0)
        cv.ellipse(P_SHOES, ax + toe * 0.6, ANKLE_Y + 0.012, lw * 0.55 + abs(toe) * 0.4, 0.02)


def _arms(cv: Canvas, sw: float, side: bool, swing: float, short_sleeves: bool) -> None:
    """Arms: sleeves (upper) + skin or sleeves (lower) + hands; one arm in a side view."""
    arms = (0,) if side else (-1, 1)
    for sign in arms:
        top_x = 0.5 + sign * (sw - 0.03)
        end_x = top_x + (swing * 0.12 if side else sign * (0.05 + 0.03 * abs(swing)))
        elbow = ((top_x + end_x) / 2, 0.34)
        lower = P_SKIN if short_sleeves else P_SLEEVES
        cv.line(P_SLEEVES, (top_x, SHOULDER_Y + 0.03), elbow, 0.17)
        cv.line(lower, elbow, (end_x, 0.5), 0.15)
        cv.ellipse(P_SKIN, end_x, 0.515, 0.06, 0.025)


def _bag(cv: Canvas, bag: str, bag_side: int, sw: float, hw: float, view: str) -> None:
    """The backpack is seen from the back and the side, only its straps from the front; the shoulder
    bag hangs on one side (hidden behind the body in one side view)."""
    side = view in ("left", "right")
    if bag == "backpack":
        if view == "back":
            cv.rect(P_BAG, 0.5 - sw * 0.75, 0.22, 0.5 + sw * 0.75, 0.47)
        elif side:
            if view == "left":
                cv.rect(P_BAG, 0.5 + 0.1, 0.21, 0.5 + 0.27, 0.45)
        else:
            for sign in (-1, 1):
                cv.line(P_STRAP, (0.5 + sign * sw * 0.6, SHOULDER_Y), (0.5 + sign * sw * 0.55, 0.42), 0.05)
    elif bag == "shoulder" and not (side and (bag_side > 0) == (view == "left")):
        bx = 0.5 + bag_side * (hw + 0.08) if not side else 0.5
        cv.line(P_STRAP, (0.5 - bag_side * sw * 0.7, SHOULDER_Y), (bx, 0.5), 0.04)
        cv.rect(P_BAG, bx - 0.12, 0.47, bx + 0.12, 0.6)


def _head(cv: Canvas, r: float, long_hair: bool, view: str) -> None:
    """Head of radius ``r``: hair only from the back, face and hair on top / behind otherwise."""
    hx, hy = 0.5, 0.105
    ry = r * 0.62
    if view == "back":
        cv.ellipse(P_HAIR, hx, hy, r, ry)
        if long_hair:
            cv.rect(P_HAIR, hx - r, hy, hx + r, 0.2)
        return
    if long_hair:
        cv.rect(P_HAIR, hx - r, hy, hx + r, 0.19)
    cv.ellipse(P_SKIN, hx, hy, r, ry)
    if view in ("left", "right"):  # hair on the back half of the head
        start, end = (-90.0, 90.0) if view == "left" else (90.0, 270.0)
        cv.ellipse(P_HAIR, hx, hy, r * 1.02, ry * 1.02, start, end)
        cv.ellipse(P_HAIR, hx, hy - ry * 0.3, r * 1.02, ry * 0.75, 180.0, 360.0)
    else:
        cv.ellipse(P_HAIR, hx, hy - ry * 0.15, r * 1.03, ry * 0.9, 180.0, 360.0)


def _hat(cv: Canvas, r: float, view: str) -> None:
    """Cap over the head of radius ``r`` with its brim towards the viewing direction."""
    hx, hy = 0.5, 0.105
    ry = r * 0.62
    cv.ellipse(P_HAT, hx, hy - ry * 0.35, r * 1.1, ry * 0.75, 180.0, 360.0)
    brim = {"left": (-0.07, 0.0), "right": (0.0, 0.07)}.get(view, (-0.02, 0.02))
    cv.rect(P_HAT, hx - r * 1.1 + brim[0], hy - ry * 0.4, hx + r * 1.1 + brim[1], hy - ry * 0.25)
