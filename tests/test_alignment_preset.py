"""The alignment preset of the synthetic benchmark: every image's recorded NIR / TIR shift is the applied one."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from train.synthetic import SyntheticSpec, render_frame

# the alignment preset at test size, object on a plain background (its mask is the only thing warped)
ALIGN = SyntheticSpec.preset("alignment", train_ids=2, test_ids=2, cameras=3, per_camera=2, height=64, width=32,
                             rig_shift=6.0, clutter=0.0, noise=0.0, viewpoint=0.0)


def _matrix(shift, scale: float, rotation: float, spec: SyntheticSpec) -> np.ndarray:
    """The [2, 3] warp the metadata describes: scale and rotation about the image centre, then ``shift``."""
    a = np.deg2rad(rotation)
    lin = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = np.array([spec.width / 2, spec.height / 2])
    return np.hstack([lin, (centre + np.asarray(shift) - lin @ centre)[:, None]])


def _warp(mask: np.ndarray, m: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(mask, m, (mask.shape[1], mask.shape[0]), flags=cv2.INTER_LINEAR, borderValue=0)


def _frames(spec: SyntheticSpec):
    return [(cam, render_frame(spec, "test", pid, cam, i)) for pid in spec.pids("test")
            for cam in range(spec.cameras) for i in range(spec.per_camera)]


def test_recorded_shift_scale_and_rotation_are_the_applied_warp():
    """The RGB object mask warped by the recorded shift / scale / rotation is the NIR / TIR object mask;
    one pixel more shift in x or y is far off."""
    for _, frame in _frames(ALIGN):
        for m, name in ((1, "nir"), (2, "tir")):
            shift, scale, rot = (frame.meta[f"{name}_{k}"] for k in ("shift", "scale", "rotation"))
            assert scale != 1.0 and rot != 0.0
            err = np.abs(_warp(frame.masks[0], _matrix(shift, scale, rot, ALIGN)) - frame.masks[m]).mean()
            assert err < 0.003
            for dx, dy in ((1, 0), (0, 1)):
                wrong = _matrix((shift[0] + dx, shift[1] + dy), scale, rot, ALIGN)
                assert np.abs(_warp(frame.masks[0], wrong) - frame.masks[m]).mean() > 5 * err + 0.005


def test_rig_shift_is_fixed_per_camera_and_jitter_varies_per_image():
    rig_only = ALIGN.replace(misalign=0.0, misalign_rotation=0.0, misalign_scale=0.0)
    shifts = {}
    for cam, frame in _frames(rig_only):
        shifts.setdefault(cam, set()).add((tuple(frame.meta["nir_shift"]), tuple(frame.meta["tir_shift"])))
        assert frame.meta["nir_scale"] == 1.0 and frame.meta["nir_rotation"] == 0.0
    assert all(len(s) == 1 for s in shifts.values())  # one rig shift per camera
    rigs = [next(iter(s)) for s in shifts.values()]
    assert len(set(rigs)) == rig_only.cameras
    assert max(abs(v) for rig in rigs for shift in rig for v in shift) <= 6.0
    jittered = [f.meta["nir_shift"] for cam, f in _frames(ALIGN) if cam == 0]
    assert len({tuple(s) for s in jittered}) == len(jittered)  # per-image jitter on top
    assert all(abs(s[k] - rigs[0][0][k]) <= ALIGN.misalign + 0.01 for s in jittered for k in (0, 1))


def test_default_spec_is_unchanged_and_preset_errors_are_clear():
    default = SyntheticSpec()
    assert default.rig_shift == 0 and default.misalign_rotation == 0
    assert SyntheticSpec.preset("default") == default
    frame = render_frame(SyntheticSpec(train_ids=1, test_ids=1, cameras=1, per_camera=1, height=64, width=32),
                         "test", 2, 0, 0)
    assert set(frame.meta) == {"view", "kind", "night", "scene", "nir_shift", "tir_shift"}
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        SyntheticSpec.preset("nope")
    with pytest.raises(ValueError, match="half the image"):
        SyntheticSpec(height=64, width=32, rig_shift=20.0)
