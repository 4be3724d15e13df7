"""Vehicle-like identities drawn into a label canvas (front / back view, or a side view)."""
from __future__ import annotations

from .canvas import Canvas
from .identity import (
    V_BODY,
    V_BUMPER,
    V_DECAL,
    V_GLASS,
    V_GRILLE,
    V_LIGHT,
    V_PLATE,
    V_ROOFBOX,
    V_SECOND,
    V_TAIL,
    V_WHEEL,
    Identity,
)


def draw_vehicle(cv: Canvas, ident: Identity, view: str, pose: dict) -> None:
    """Draw ``ident`` seen from ``view`` (``pose`` is unused: vehicles have none)."""
    if view in ("front", "back"):
        _front_or_back(cv, ident.shape, view)
    else:
        _side(cv, ident.shape, flip=view == "right")


def _front_or_back(cv: Canvas, s: dict, view: str) -> None:
    """Wheels peeking below the body, body, cabin, window, lights, plate, grille / rear details."""
    ct = s["cabin_top"]
    bw = s["body_width"] / 2
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


def _side(cv: Canvas, s: dict, flip: bool) -> None:
    """Side view (left = facing left; ``flip`` mirrors it): long body, cabin with two windows, two wheels."""
    def fx(x):  # mirror for the right view (only the geometry, textures are in canvas coordinates)
        return 1.0 - x if flip else x
    top = 0.22 + s["cabin_top"] * 0.4
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
