"""Named random streams: every random draw comes from ``SeedSequence([seed, tag, *key])``.

One stream per aspect (identity, pose, placement, background, night, noise, misalignment...), so an
image depends only on its own key, never on the order of generation, and switching one difficulty
does not change the draws of the others.
"""
from __future__ import annotations

import numpy as np

# Random-stream tags (first entries of every SeedSequence key): never reorder.
T_IDENTITY, T_SET, T_CAMERA, T_SCENE, T_DISTRACTOR, T_VIEW = 1, 2, 3, 4, 5, 6
T_POSE, T_PLACE, T_BACKGROUND, T_ILLUM, T_NIGHT, T_NOISE, T_MISALIGN = 10, 11, 12, 13, 14, 15, 16
T_RIG, T_ROTATION = 17, 18  # the alignment preset's camera-rig shifts and per-image rotations
SPLIT_CODE = {"train": 0, "test": 1}


def stream(seed: int, *key: int) -> np.random.Generator:
    """The random generator of stream ``key`` (tag first) under the master ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(int(k) for k in key)]))
