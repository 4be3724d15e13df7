"""bf16 inference: close to fp32, fp32 parameters untouched, the bf16 copy follows weight updates."""
import threading

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


def test_bf16_concurrent_calls_equal_serial(tiny_cfg):
    """Threads running the bf16 encoder at once (as the demo's searches do) get exactly the serial
    features, and the model keeps its fp32 parameters (issue 21: a per-call weight swap let one
    thread's bf16 input meet the fp32 weight another thread had just put back, and could leave the
    model holding bf16 tensors)."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg).eval()
    model.set_inference_precision("bf16")
    batches = [make_batch(tiny_cfg, batch=2, seed=i) for i in range(4)]
    serial = [model.extract_features(*images, cams) for images, cams, _ in batches]
    errors, results = [], []

    def worker(t: int):
        for r in range(16):
            i = (t + r) % len(batches)
            images, cams, _ = batches[i]
            try:
                out = model.explain(*images, cams).features if r % 4 == 0 else model.extract_features(*images, cams)
                results.append((i, out))
            except Exception as exc:  # noqa: BLE001 - every failure is collected and asserted below
                errors.append(repr(exc)[:200])

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {(type(p), p.dtype) for p in model.parameters()} == {(torch.nn.Parameter, torch.float32)}
    assert len(results) == 8 * 16
    for i, out in results:
        torch.testing.assert_close(out, serial[i], rtol=0, atol=1e-6)


def test_same_precision_again_keeps_the_bf16_copy(tiny_cfg):
    model = build_model(tiny_cfg).eval()
    model.set_inference_precision("bf16")
    (rgb, nir, tir), cams, _ = make_batch(tiny_cfg, batch=2)
    model.extract_features(rgb, nir, tir, cams)
    copy = model._shadow.copy()
    model.set_inference_precision("bf16")  # e.g. a second TorchEngine over the same model
    assert model._shadow.copy() is copy
    assert all(p.dtype == torch.float32 for p in model.parameters())
    linears = [m for m in copy.modules() if isinstance(m, torch.nn.Linear)]
    assert {p.dtype for m in linears for p in m.parameters()} == {torch.bfloat16}
