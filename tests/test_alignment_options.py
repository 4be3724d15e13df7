"""The named GAM / LAM fixes of docs/alignment.md: each does what it says, and the defaults stay the authors'."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from signal_core import SignalConfig, build_model
from signal_core.model.gam import GlobalAlignment, _masked_smoothed_ce
from signal_core.model.lam import LocalAlignment, reference_points
from train.config import TrainConfig
from train.optim import parameter_groups


def _collinear_batch(b: int = 16, d: int = 32, seed: int = 0) -> torch.Tensor:
    """[B, 3, 1, D] mean patch tokens: one large shared direction (the collinearity measured on the trained
    models) plus a per-sample component common to the three modalities and a little per-modality noise."""
    g = torch.Generator().manual_seed(seed)
    common = 20.0 * torch.randn(d, generator=g)
    sample = torch.randn(b, 1, d, generator=g)
    return (common + sample + 0.3 * torch.randn(b, 3, d, generator=g)).unsqueeze(2)


def test_authors_gam_sits_at_chance_on_collinear_features_and_standardising_goes_below():
    feats = _collinear_batch()
    chance = math.log(16)
    authors = GlobalAlignment()
    assert abs(authors.loss(authors.volumes(feats)).item() - chance) < 0.02  # within 1 % of chance
    fixed = GlobalAlignment(standardise=True, learn_tau=False)
    assert fixed.loss(fixed.volumes(feats)).item() < chance - 0.5
    # ... and at exactly ln B when NIR = TIR, or all three equal (the formulation's fixed points)
    same = feats[:, :1].expand(-1, 3, -1, -1)
    assert abs(authors.loss(authors.volumes(same)).item() - chance) < 1e-4


def test_fixed_tau_keeps_its_key_and_gets_no_gradient():
    gam = GlobalAlignment(tau=0.05, learn_tau=False)
    assert not gam.tau.requires_grad and "tau" in gam.state_dict()
    assert torch.equal(gam.tau.detach(), torch.tensor(0.05))


def test_identity_negatives_ignore_same_identity_columns():
    g = torch.Generator().manual_seed(1)
    volume = torch.rand(8, 8, generator=g)
    gam = GlobalAlignment()
    unique = torch.arange(8)
    aware = GlobalAlignment(identity_negatives=True)
    assert torch.allclose(aware.loss(volume, unique), gam.loss(volume), atol=1e-6)  # nothing to exclude
    logits = -volume / 0.07
    assert torch.allclose(_masked_smoothed_ce(logits, torch.zeros(8, 8, dtype=torch.bool), 0.1),
                          F.cross_entropy(logits, unique, label_smoothing=0.1), atol=1e-6)
    pk = torch.arange(4).repeat_interleave(2)  # 4 identities x 2
    changed = volume.clone()
    changed[0, 1] = changed[1, 0] = 0.0  # a same-identity pair: no longer a negative
    assert torch.allclose(aware.loss(changed, pk), aware.loss(volume, pk), atol=1e-6)
    assert not torch.allclose(gam.loss(changed), gam.loss(volume))
    with pytest.raises(ValueError, match="targets"):
        aware.loss(volume)


def test_centred_reference_grid_is_the_window_centres():
    ref = reference_points(4, 2, "centred", grid=(16, 8))
    assert torch.allclose(ref[:, 0, 0], torch.tensor([-0.8, -4 / 15, 4 / 15, 0.8]), atol=1e-6)
    assert torch.allclose(ref[0, :, 1], torch.tensor([-4 / 7, 4 / 7]), atol=1e-6)
    official = reference_points(4, 2, "official")
    assert official[..., 0].max() > 1 and official[..., 1].max() == 2.0  # overshoots: clamped when sampling
    with pytest.raises(ValueError, match="patch grid"):
        reference_points(4, 2, "centred")


@pytest.mark.parametrize("detach", [False, True])
def test_lam_detach_stops_the_gradient_to_the_tokens_not_to_the_offsets(detach):
    torch.manual_seed(0)
    lam = LocalAlignment(dim=8, grid=(8, 4), stride=2, offset_channels=2, reference_mode="centred", detach=detach)
    patches = torch.randn(2, 3, 32, 8, requires_grad=True)
    LocalAlignment.loss(lam(patches)).backward()
    assert (patches.grad is None) == detach
    offset_grad = lam.samplers[1].offset_net[-1].weight.grad
    assert offset_grad is not None and offset_grad.abs().sum() > 0


def test_two_offset_channels_move_y_and_x_independently():
    torch.manual_seed(0)
    for channels in (1, 2):
        lam = LocalAlignment(dim=8, grid=(8, 4), stride=2, offset_channels=channels, reference_mode="centred")
        out = lam(torch.randn(4, 3, 32, 8))
        delta = (out.positions - out.reference)  # [B, 3, Hk, Wk, 2] (x, y)
        ratio = delta[..., 0] / delta[..., 1]  # 1 channel: dx / dy is the fixed ratio (Hk-1) / (Wk-1) = 3
        assert torch.allclose(ratio, torch.full_like(ratio, 3.0), atol=1e-4) == (channels == 1)


def test_config_fields_build_the_fixed_modules_and_defaults_stay_the_authors():
    default = SignalConfig.preset("tiny", num_classes=4)
    assert (default.gam_standardise, default.gam_learn_tau, default.gam_identity_negatives, default.lam_detach,
            default.reference_points, default.offset_channels) == (False, True, False, False, "official", 1)
    model = build_model(default.replace(gam_standardise=True, gam_learn_tau=False, gam_identity_negatives=True,
                                        lam_detach=True, reference_points="centred", offset_channels=2))
    assert model.gam.standardise and model.gam.identity_negatives and not model.gam.tau.requires_grad
    assert model.lam.detach and model.lam.samplers[0].reference_mode == "centred"
    assert set(model.state_dict()) == set(build_model(default).state_dict())  # same checkpoint keys
    with pytest.raises(ValueError, match="reference_points"):
        SignalConfig.preset("tiny", reference_points="middle")


def test_lam_learning_rate_group_only_when_asked():
    model = build_model(SignalConfig.preset("tiny", num_classes=4))
    lam_params = {id(p) for n, p in model.named_parameters() if n.startswith("lam.")}
    groups = parameter_groups(model, TrainConfig(base_lr=1e-3, lam_lr_factor=3.0))
    (lam_group,) = [g for g in groups if g["name"] == "lam"]
    assert lam_group["lr"] == pytest.approx(3e-3) and {id(p) for p in lam_group["params"]} == lam_params
    assert all("lam" not in g["name"] for g in parameter_groups(model, TrainConfig(base_lr=1e-3)))
