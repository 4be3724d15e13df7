"""Tiny random-init models on CPU: shapes, gradients, ablation switches, explain, features."""
import pytest
import torch

from signal_core import SignalConfig, build_model
from tests.helpers import make_batch

SWITCHES = [
    {},
    {"head_layout": "per_modality"},
    {"use_sim": False},
    {"use_gam": False, "use_lam": False},
    {"selection": "intersection"},
    {"share_offsets": True},
    {"offset_channels": 2, "reference_points": "paper"},
    {"trainable_selection": True},
    {"k2": 5},
]

# Parameters the authors' code never trains: selection projections (hard top-k) and BN biases.
UNTRAINED = {"sim.selection.q_proj", "sim.selection.k_proj", "sim.selection.v_proj"}


@pytest.mark.parametrize("overrides", SWITCHES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_training_forward_shapes_losses_and_gradients(overrides):
    cfg = SignalConfig.preset("tiny", num_classes=6, num_cameras=3, **overrides)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    images, cams, targets = make_batch(cfg)
    out = model(*images, cam_ids=cams, targets=targets)
    d, b = cfg.embed_dim, 8
    assert out.cls_tokens.shape == (b, 3, d)
    assert out.feature.shape == (b, cfg.feature_dim)
    expected = {"id_fused", "triplet_fused"} if cfg.use_sim else set()
    heads = ["concat"] if cfg.head_layout == "concat" else ["rgb", "nir", "tir"]
    expected |= {f"{kind}_{h}" for kind in ("id", "triplet") for h in heads}
    expected |= {"gam"} if cfg.use_gam else set()
    expected |= {"lam"} if cfg.use_lam else set()
    assert set(out.losses) == expected
    assert all(torch.isfinite(v) and v.ndim == 0 for v in out.losses.values())
    assert torch.allclose(out.loss, sum(out.losses.values()))
    out.loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), name
    frozen = {n.rsplit(".", 1)[0] for n, p in model.named_parameters() if not p.requires_grad}
    bn_biases = {f"heads.{h}.bn" for h in model.heads}
    untrained = UNTRAINED - ({"sim.selection.q_proj", "sim.selection.k_proj"} if cfg.trainable_selection else set())
    assert frozen == (untrained if cfg.use_sim else set()) | bn_biases


def test_trainable_selection_keeps_forward_values(tiny_cfg):
    images, cams, _ = make_batch(tiny_cfg)
    torch.manual_seed(0)
    plain = build_model(tiny_cfg)
    torch.manual_seed(0)
    paper = build_model(tiny_cfg.replace(trainable_selection=True))
    assert torch.allclose(plain.extract_features(*images, cams), paper.extract_features(*images, cams), atol=1e-6)


def test_extract_features_eval_mode_restored_and_batch_independent(tiny_cfg):
    model = build_model(tiny_cfg).train()
    images, cams, _ = make_batch(tiny_cfg)
    feats = model.extract_features(*images, cams)
    assert model.training
    assert feats.shape == (8, 6 * tiny_cfg.embed_dim) and torch.isfinite(feats).all()
    single = model.extract_features(*(x[:1] for x in images), cams[:1])
    assert torch.allclose(single, feats[:1], atol=1e-5)
    model.eval()
    assert torch.allclose(model(*images, cam_ids=cams).feature, feats, atol=1e-6)


def test_unknown_camera_uses_the_mean_embedding(tiny_cfg):
    model = build_model(tiny_cfg)
    images, _, _ = make_batch(tiny_cfg)
    unknown = model.extract_features(*images)
    with torch.no_grad():
        model.backbone.camera_embed.copy_(model.backbone.camera_embed.mean(0, keepdim=True).expand(3, -1))
    known = model.extract_features(*images, torch.zeros(8, dtype=torch.long))
    assert torch.allclose(unknown, known, atol=1e-6)


def test_bad_inputs_are_clear_errors(tiny_cfg):
    model = build_model(tiny_cfg)
    images, _, _ = make_batch(tiny_cfg)
    with pytest.raises(ValueError, match="camera ids"):
        model.extract_features(*images, torch.full((8,), 7))
    with pytest.raises(ValueError, match="expects"):
        model.extract_features(*(x[..., :16] for x in images))
    with pytest.raises(ValueError, match="one shape"):
        model.extract_features(images[0], images[1][:2], images[2])


def test_explain_masks_and_sampling_points(tiny_cfg):
    model = build_model(tiny_cfg)
    images, cams, _ = make_batch(tiny_cfg)
    exp = model.explain(*images, cams)
    h, w = tiny_cfg.grid_size
    hk, wk = tiny_cfg.lam_grid_size
    assert exp.grid_size == (h, w)
    for name in ("rgb", "nir", "tir"):
        m = exp[name]
        assert m.final.shape == (8, h * w) and m.final.dtype == torch.bool
        assert torch.equal(m.final, m.intra | m.inter)
        assert (m.intra.sum(1) == tiny_cfg.k1).all()
        assert m.reference_points.shape == (hk * wk, 2)
        assert m.sampled_positions.shape == (8, hk * wk, 2)
        assert m.sampled_positions.abs().max() <= 1.0


def test_config_validation_and_presets():
    assert SignalConfig.preset("rgbnt201").feature_dim == 3072
    assert SignalConfig.preset("msvr310", k1=10).k2_effective == 20
    cfg = SignalConfig.preset("rgbnt100")
    assert cfg.image_size == (128, 256) and cfg.head_layout == "per_modality" and cfg.k1 == 112
    assert SignalConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="Unknown preset"):
        SignalConfig.preset("market1501")
    with pytest.raises(ValueError, match="Unknown config field"):
        SignalConfig.preset("tiny", topk=3)
    with pytest.raises(ValueError, match="k1"):
        SignalConfig.preset("tiny", k1=1000)
    with pytest.raises(ValueError, match="selection"):
        SignalConfig.preset("tiny", selection="xor")
    with pytest.raises(ValueError, match="lam_stride"):
        SignalConfig.preset("tiny", lam_stride=4)
