"""bf16 inference: close to fp32, fp32 parameters untouched, the bf16 copy follows weight updates."""
import pytest
import torch
import torch.nn.functional as F

from signal_core import build_model
from signal_core.model.precision import bf16_is_fast, cpu_bf16_speedup, resolve_precision
from tests.helpers import make_batch


def test_bf16_features_close_to_fp32(tiny_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    (rgb, nir, tir), cams, _ = make_batch(tiny_cfg, batch=16)
    ref = model.extract_features(rgb, nir, tir, cams)
    assert model.set_inference_precision("bf16") == "bf16"
    feats = model.extract_features(rgb, nir, tir, cams)
    assert feats.dtype == torch.float32 and feats.shape == ref.shape
    assert F.cosine_similarity(feats, ref).min().item() >= 0.999
    assert not torch.equal(feats, ref)  # it really ran in bf16
    assert model.set_inference_precision("fp32") == "fp32"
    assert torch.equal(model.extract_features(rgb, nir, tir, cams), ref)


def test_bf16_keeps_fp32_parameters_and_training(tiny_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.set_inference_precision("bf16")
    (rgb, nir, tir), cams, targets = make_batch(tiny_cfg)
    model.extract_features(rgb, nir, tir, cams)
    assert all(v.dtype == before[k].dtype and torch.equal(v, before[k]) for k, v in model.state_dict().items())
    model.train()
    out = model(rgb, nir, tir, cams, targets=targets)  # training forward ignores the inference precision
    assert out.cls_tokens.dtype == torch.float32


def test_bf16_copy_follows_weight_updates(tiny_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    (rgb, nir, tir), cams, targets = make_batch(tiny_cfg)
    model.set_inference_precision("bf16")
    old = model.extract_features(rgb, nir, tir, cams)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    model(rgb, nir, tir, cams, targets=targets).loss.backward()
    opt.step()
    new = model.extract_features(rgb, nir, tir, cams)  # same precision setting, updated weights
    model.set_inference_precision("fp32")
    ref = model.extract_features(rgb, nir, tir, cams)
    assert (new - old).abs().max() > 1e-2
    assert F.cosine_similarity(new, ref).min().item() >= 0.999


def test_bf16_explain(tiny_cfg):
    model = build_model(tiny_cfg)
    model.set_inference_precision("bf16")
    (rgb, nir, tir), cams, _ = make_batch(tiny_cfg, batch=2)
    exp = model.explain(rgb, nir, tir, cams)
    assert exp.rgb.final.shape == (2, tiny_cfg.num_patches)
    assert exp.tir.sampled_positions.dtype == torch.float32


def test_precision_names():
    with pytest.raises(ValueError, match="fp32, bf16, auto"):
        resolve_precision("fp16", "cpu")
    assert resolve_precision("bf16", "cpu") == "bf16"
    expected = "bf16" if cpu_bf16_speedup() >= 1.3 else "fp32"
    assert resolve_precision("auto", "cpu") == expected == ("bf16" if bf16_is_fast("cpu") else "fp32")
