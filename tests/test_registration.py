"""Image-level registration (``model.registration``, docs/alignment.md): the estimator finds a known shift of
one image pair, batched, falls back to 0 on a featureless image, and the model warps NIR / TIR by it;
with the option off (the default) nothing changes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from signal_core import SignalConfig, build_model
from signal_core.config import REGISTRATIONS
from signal_core.model.registration import (
    METHODS,
    Registration,
    displacement_on_grid,
    estimate_shift,
    search_radius,
    translate,
)

SIZE = (128, 64)
SHIFTS = [(3.0, -5.0), (-7.4, 2.6), (12.0, 9.0), (0.0, 0.0), (-2.5, -11.3)]  # (x, y) px


def _scenes(n: int, seed: int = 0, size=SIZE) -> torch.Tensor:
    """[n, 3, H, W] smooth random colour scenes with edges (blobs thresholded into shapes)."""
    g = torch.Generator().manual_seed(seed)
    smooth = F.interpolate(torch.randn(n, 3, size[0] // 8, size[1] // 8, generator=g), size=size, mode="bicubic",
                           align_corners=False)
    return torch.where(smooth > 0.3, 0.8, -0.5) + 0.2 * smooth


def _pair(shifts, seed: int = 0, invert: bool = False):
    """RGB scenes and the same scenes with their content moved: ``moved(p + t) = rgb(p)``."""
    rgb = _scenes(len(shifts), seed)
    moved = translate(rgb, -torch.tensor(shifts))  # out(p) = rgb(p - t), i.e. out(p + t) = rgb(p)
    return rgb, (-moved if invert else moved).mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)


def test_the_estimator_recovers_known_shifts_batched_within_half_a_pixel():
    rgb, moved = _pair(SHIFTS)
    shift, confidence = estimate_shift(rgb, moved, "orientation", search_radius(SIZE, 0.3125), 1.1)
    assert torch.allclose(shift, torch.tensor(SHIFTS), atol=0.5), shift
    assert (confidence > 1.1).all()
    alone, _ = estimate_shift(rgb[2:3], moved[2:3], "orientation", 20, 1.1)  # one pair alone = its batch row
    assert torch.allclose(alone, shift[2:3], atol=1e-4)


def test_the_estimator_is_blind_to_the_sign_of_the_contrast_as_tir_needs():
    rgb, moved = _pair(SHIFTS, seed=1, invert=True)
    shift, _ = estimate_shift(rgb, moved, "orientation", 20, 1.1)
    assert torch.allclose(shift, torch.tensor(SHIFTS), atol=0.5), shift


def test_a_featureless_image_or_a_low_peak_ratio_gives_zero_displacement():
    rgb = _scenes(2)
    flat = torch.full_like(rgb, 0.3)
    shift, confidence = estimate_shift(rgb, flat, "orientation", 20, 1.1)
    assert shift.eq(0).all() and confidence.eq(0).all()
    _, moved = _pair([(5.0, 5.0), (5.0, 5.0)])
    shift, confidence = estimate_shift(rgb, moved, "orientation", 20, min_confidence=1e9)
    assert shift.eq(0).all() and (confidence > 0).all()


def test_every_method_finds_an_integer_shift_and_the_config_names_them():
    rgb, moved = _pair([(4.0, -6.0)], seed=2)
    for method in METHODS:
        shift, _ = estimate_shift(rgb, moved, method, 20, 1.0)
        assert torch.allclose(shift, torch.tensor([[4.0, -6.0]]), atol=0.5), (method, shift)
    assert set(REGISTRATIONS) == {"none", *METHODS}
    with pytest.raises(ValueError, match="registration must be one of"):
        SignalConfig.preset("tiny", registration="phase")
    with pytest.raises(ValueError, match="registration_window"):
        SignalConfig.preset("tiny", registration_window=0.9)


def test_translate_moves_content_and_leaves_a_zero_shift_bit_identical():
    images = _scenes(2)
    out = translate(images, torch.tensor([[0.0, 0.0], [3.0, -2.0]]))
    assert torch.equal(out[0], images[0])
    assert torch.allclose(out[1, :, 10:-10, 10:-10], images[1, :, 8:-12, 13:-7], atol=1e-5)  # out(p) = in(p + t)


def _cfg(**changes) -> SignalConfig:
    return SignalConfig.preset("tiny", image_size=SIZE, patch_size=16, lam_stride=2, **changes)


def test_the_option_off_leaves_features_bit_identical_and_on_it_undoes_the_shift():
    torch.manual_seed(0)
    plain = build_model(_cfg()).eval()
    registered = build_model(_cfg(registration="orientation")).eval()
    registered.load_state_dict(plain.state_dict())  # no parameters of its own: the same keys
    assert plain.registration is None and isinstance(registered.registration, Registration)
    rgb = _scenes(3, seed=3)
    assert all(a is b for a, b in zip(plain.register(rgb, rgb, rgb), (rgb, rgb, None)))  # off: untouched
    assert torch.equal(registered.extract_features(rgb, rgb, rgb), plain.extract_features(rgb, rgb, rgb))  # found 0
    _, moved = _pair([(6.0, -4.0), (-3.0, 8.0), (0.0, 0.0)], seed=3)
    aligned = rgb.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    base = plain.extract_features(rgb, aligned, aligned)
    off, on = plain.extract_features(rgb, moved, moved), registered.extract_features(rgb, moved, moved)
    assert (on - base).abs().max() < 0.5 * (off - base).abs().max()


def test_explain_reports_positions_and_displacement_including_the_registration():
    torch.manual_seed(0)
    model = build_model(_cfg(registration="orientation")).eval()
    plain = build_model(_cfg()).eval()
    plain.load_state_dict(model.state_dict())
    rgb = _scenes(2, seed=4)
    _, moved = _pair([(6.0, -4.0), (-3.0, 8.0)], seed=4)
    shifted = model.explain(rgb, moved, moved)
    found = shifted.nir.displacement
    assert torch.allclose(found, torch.tensor([[6.0, -4.0], [-3.0, 8.0]]), atol=0.5)
    assert shifted.rgb.displacement.eq(0).all() and plain.explain(rgb, moved, moved).nir.displacement is None
    nir, tir, _ = model.register(rgb, moved, moved)
    on_warped = plain.explain(rgb, nir, tir)  # LAM on the registered images, positions in their frame
    expected = on_warped.nir.sampled_positions + displacement_on_grid(found, (8, 4), SIZE)[:, None]
    assert torch.allclose(shifted.nir.sampled_positions, expected, atol=1e-5)  # in the NIR image's own frame
    assert torch.equal(shifted.rgb.sampled_positions, on_warped.rgb.sampled_positions)
    one_px = displacement_on_grid(torch.tensor([1.0, 1.0]), (8, 4), SIZE)
    assert torch.allclose(one_px, torch.tensor([2 / (3 * 16), 2 / (7 * 16)]))


def test_training_forward_reports_the_displacement():
    torch.manual_seed(0)
    model = build_model(_cfg(registration="orientation", num_classes=2)).train()
    rgb = _scenes(2, seed=5)
    _, moved = _pair([(5.0, 3.0), (-4.0, -6.0)], seed=5)
    out = model(rgb, moved, moved, targets=torch.tensor([0, 1]))
    assert torch.allclose(out.displacement[:, 0], torch.tensor([[5.0, 3.0], [-4.0, -6.0]]), atol=0.5)
    assert torch.isfinite(out.loss)


def test_the_onnx_graph_refuses_registration_rather_than_silently_dropping_it():
    from signal_core.deploy.export import FeatureGraph

    with pytest.raises(ValueError, match="not part of the exported graph"):
        FeatureGraph(build_model(_cfg(registration="orientation")))
    FeatureGraph(build_model(_cfg()))  # the default exports as before
