"""Colours, NIR reflectances and texture kinds shared by every identity, scene and distractor."""
from __future__ import annotations

import numpy as np

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

# Texture kinds: the first entry of a texture tuple ``(kind, angle rad, period px)``.
PLAIN, STRIPES, CHECKS, DOTS = 0, 1, 2, 3
