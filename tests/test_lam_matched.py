"""The matched LAM offsets (``lam_offsets: matched``, docs/alignment.md): NIR / TIR positions found by a local
cost volume against RGB follow a shift that changes per sample, which the authors' offset nets cannot see."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from signal_core import SignalConfig, build_model
from signal_core.model.lam import LocalAlignment, MatchedSampler

D, H, W = 16, 8, 8


def _shifted_batch(shifts: list[tuple[int, int]], seed: int = 0) -> torch.Tensor:
    """[B, 3, L, D] tokens: RGB a window of a smooth random map, NIR the same map with its content moved by
    (dy, dx) tokens (one shift per sample), TIR = RGB."""
    g = torch.Generator().manual_seed(seed)
    big = F.interpolate(torch.randn(len(shifts), D, 6, 6, generator=g), size=(3 * H, 3 * W), mode="bicubic",
                        align_corners=True)
    rgb = big[:, :, H:2 * H, W:2 * W]
    nir = torch.stack([big[i, :, H - dy:2 * H - dy, W - dx:2 * W - dx] for i, (dy, dx) in enumerate(shifts)])
    return torch.stack([rgb, nir, rgb], 1).flatten(3).transpose(2, 3)


def _relative_tokens(lam: LocalAlignment, patches: torch.Tensor) -> torch.Tensor:
    """[B, 2] mean NIR position minus RGB's, in tokens (dy, dx), over the grid points away from the border."""
    pos = lam(patches).positions  # [B, 3, Hk, Wk, 2] (x, y)
    rel = (pos[:, 1] - pos[:, 0])[:, 1:-1, 1:-1].mean(dim=(1, 2))  # inner points: no clamping at +-1
    return rel.flip(-1) * torch.tensor([(H - 1) / 2, (W - 1) / 2])


def test_matched_offsets_follow_a_per_sample_shift_with_no_training():
    shifts = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (0, 0)]
    lam = LocalAlignment(D, (H, W), stride=2, offset_channels=2, reference_mode="centred", offsets="matched")
    for sampler in lam.samplers[1:]:
        sampler.log_tau.data.fill_(-5.0)  # a sharp softmax: the expectation is the best match
    with torch.no_grad():
        rel = _relative_tokens(lam, _shifted_batch(shifts))
    assert torch.allclose(rel, torch.tensor(shifts, dtype=torch.float32), atol=0.15), rel


def test_matched_offsets_learn_through_the_mse_and_keep_the_encoder_out_when_detached():
    lam = LocalAlignment(D, (H, W), stride=2, offsets="matched", detach=True)
    patches = _shifted_batch([(1, 0), (0, -1)]).requires_grad_()
    LocalAlignment.loss(lam(patches)).backward()
    matcher = lam.samplers[1]
    assert isinstance(matcher, MatchedSampler) and len(lam.samplers) == 3
    assert matcher.log_tau.grad.abs().item() > 0 and matcher.proj.weight.grad.abs().sum().item() > 0
    assert patches.grad is None


def test_the_matched_option_is_named_and_checked_in_the_config():
    cfg = SignalConfig.preset("tiny", image_size=(64, 32), patch_size=8, lam_stride=2, lam_offsets="matched")
    model = build_model(cfg).eval()
    assert model.lam.offsets == "matched" and isinstance(model.lam.samplers[2], MatchedSampler)
    assert SignalConfig.preset("tiny", image_size=(64, 32), patch_size=8, lam_stride=2).lam_offsets == "own"
    with pytest.raises(ValueError, match="lam_offsets must be one of"):
        SignalConfig.preset("tiny", lam_offsets="rgb")
    with pytest.raises(ValueError, match="share_offsets=False"):
        SignalConfig.preset("tiny", lam_offsets="matched", share_offsets=True)
