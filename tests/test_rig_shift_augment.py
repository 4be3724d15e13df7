"""``train.rig_shift_augment`` (signal_core/data/transforms.py): NIR and TIR are moved by their own known
integer displacement with a reflection border; off (the default) the batches are bit-identical to before."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from signal_core.data.transforms import (
    RigShiftTransform,
    TripleTransform,
    build_test_transform,
    build_train_transform,
    build_transforms,
    shift_content,
)
from train.config import TrainConfig, validate_train_config

SIZE = (32, 16)


def images(seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)) for _ in range(3)]


def test_shift_content_moves_a_point_by_the_displacement_with_a_reflection_border():
    image = torch.zeros(1, 10, 10)
    image[0, 5, 5] = 1.0  # (y, x) = (5, 5): away from what the border reflects
    moved = shift_content(image, 3, -1)  # out(p + d) = image(p)
    assert moved[0, 4, 8] == 1.0 and moved.sum() == 1.0
    assert shift_content(image, 0, 0) is image
    ramp = torch.arange(6.0).expand(1, 8, 6)
    assert shift_content(ramp, 2, 0)[0, 0].tolist() == [2.0, 1.0, 0.0, 1.0, 2.0, 3.0]  # reflected, not zeros


def test_nir_and_tir_get_their_own_known_displacement_and_rgb_none():
    inner = build_test_transform(SIZE)  # deterministic: only the shift is random
    shifted = RigShiftTransform(inner, 4, generator=torch.Generator().manual_seed(7))
    expected = torch.randint(-4, 5, (2, 2), generator=torch.Generator().manual_seed(7)).tolist()
    assert expected[0] != expected[1]  # this seed draws two different displacements
    plain = inner(images())
    rgb, nir, tir = shifted(images())
    assert torch.equal(rgb, plain[0])
    assert torch.equal(nir, shift_content(plain[1], *expected[0]))
    assert torch.equal(tir, shift_content(plain[2], *expected[1]))


def test_off_by_default_the_training_batches_are_bit_identical():
    assert TrainConfig().rig_shift_augment == 0
    transform = build_transforms(SIZE, train=True, rig_shift=0)
    assert isinstance(transform, TripleTransform)
    torch.manual_seed(3)
    before = build_train_transform(SIZE)(images())
    torch.manual_seed(3)
    after = transform(images())
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert isinstance(build_transforms(SIZE, train=True, rig_shift=2), RigShiftTransform)


def test_bad_values_are_one_line_errors():
    with pytest.raises(ValueError, match="from 0 to 7 px"):
        build_transforms(SIZE, train=True, rig_shift=8)
    with pytest.raises(ValueError, match="training augmentation"):
        build_transforms(SIZE, train=False, rig_shift=2)
    with pytest.raises(ValueError, match="rig_shift_augment"):
        validate_train_config(TrainConfig(rig_shift_augment=-1))
