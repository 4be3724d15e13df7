"""The complexity column (signal_core/model/complexity.py, python -m train.complexity): parameters and FLOPs
per module against a hand count on the tiny config, and the paper's Table 3 column on ViT-B/16."""
from __future__ import annotations

import json

import pytest

from signal_core import SignalConfig, build_model
from signal_core.model.complexity import complexity, forward_flops, parameter_counts
from train.complexity import main as complexity_main

C = 10  # identities of the tiny models


def _tiny(**kw):
    return build_model(SignalConfig.preset("tiny", num_classes=C, num_cameras=3, **kw))


def _lam_params(e: int, s: int, c: int) -> int:
    # proj_q and the first offset conv: 1x1, e -> e with bias; depthwise s x s with bias; 1x1 e -> c, no bias
    return 3 * (2 * (e * e + e) + (e * s * s + e) + e * c)


def test_parameters_against_a_hand_count():
    cfg = SignalConfig.preset("tiny", num_classes=C, num_cameras=3)
    e, w, n, p = cfg.embed_dim, cfg.width, cfg.num_patches + 1, cfg.patch_size
    params = parameter_counts(_tiny())
    every = parameter_counts(_tiny(), learnable=False)
    block = (w * 3 * w + 3 * w) + (w * w + w) + (w * 4 * w + 4 * w) + (4 * w * w + w) + 2 * 2 * w  # attn, mlp, 2 LN
    backbone = 3 * p * p * w + w + n * w + 2 * w + cfg.layers * block + 2 * w + w * e + 3 * w  # + camera embeddings
    assert params["backbone"] == backbone
    linear = e * e + e  # a Linear layer: in * out + out
    mha, ffn, norms = 4 * linear, (e * 2 * e + 2 * e) + (2 * e * e + e), 2 * 2 * e
    assert params["sim"] == mha + ffn + norms  # W_q / W_k frozen (the authors' hard top-k), W_v unused
    assert every["sim"] == params["sim"] + 3 * linear
    assert params["gam"] == 1  # tau
    assert params["lam"] == _lam_params(e, cfg.lam_stride, 1)
    assert params["heads"] == 2 * (3 * e + 3 * e * C) and every["heads"] == params["heads"] + 2 * 3 * e  # BN bias
    assert parameter_counts(_tiny(offset_channels=2, share_offsets=False))["lam"] == _lam_params(e, cfg.lam_stride, 2)
    assert parameter_counts(_tiny(share_offsets=True))["lam"] == _lam_params(e, cfg.lam_stride, 1) // 3
    off = parameter_counts(_tiny(use_sim=False, use_gam=False, use_lam=False))
    assert (off["sim"], off["gam"], off["lam"], off["heads"]) == (0, 0, 0, 3 * e + 3 * e * C)


def test_flops_against_a_hand_count():
    """A matmul of [m, k] x [k, n] is 2 m n k FLOPs; one triple is the three images stacked."""
    cfg = SignalConfig.preset("tiny", num_classes=C, num_cameras=3)
    e, w, n, p, L = cfg.embed_dim, cfg.width, cfg.num_patches + 1, cfg.patch_size, cfg.num_patches
    # qkv, out projection, QK^T and AV, mlp
    block = 2 * n * w * 3 * w + 2 * n * w * w + 2 * (2 * n * n * w) + 2 * (2 * n * w * 4 * w)
    backbone = 3 * (2 * L * 3 * p * p * w + cfg.layers * block + 2 * n * w * e)  # patch conv, blocks, proj
    hk, wk = cfg.lam_grid_size
    s = cfg.lam_stride
    lam = 3 * (2 * (2 * L * e * e) + 2 * hk * wk * e * s * s + 2 * hk * wk * e)
    flops = forward_flops(_tiny())
    assert flops["backbone"] == backbone
    assert flops["lam"] == lam
    assert flops["gam"] == 2 * (2 * e)  # RGB x NIR^T and RGB x TIR^T of one sample
    assert flops["heads"] == 2 * (2 * 3 * e * C)
    assert flops["sim"] > 0
    bare = forward_flops(_tiny(use_sim=False, use_gam=False, use_lam=False))
    assert [bare[m] for m in ("backbone", "sim", "gam", "lam", "heads")] == [backbone, 0, 0, 0, 2 * 3 * e * C]
    k1 = forward_flops(_tiny(k1=4))["sim"]
    assert k1 == flops["sim"]  # masked tokens stay in the sequence as zeros (the authors' code): k1 costs nothing


def test_complexity_sums_and_the_model_is_left_as_found():
    model = _tiny().train()
    table = complexity(model)
    assert model.training
    assert table["added"].params == sum(table[m].params for m in ("sim", "gam", "lam"))
    assert table["total"].flops == sum(table[m].flops for m in ("backbone", "sim", "gam", "lam", "heads"))
    assert table["total"].params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert table["heads"].mib_fp32 == pytest.approx(table["heads"].params * 4 / 2 ** 20)


def test_command_prints_and_writes_json(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model: {preset: tiny, pretrained: null}\ntrain: {dataset: rgbnt201}\n")
    out = tmp_path / "c.json"
    assert complexity_main(["--config", str(cfg), "--num-classes", str(C), "--out", str(out),
                            "model.use_lam=false"]) == 0
    text = capsys.readouterr().out
    assert "| lam | 0 | 0.00 | 0.00 | 0.00 | 0.0000 |" in text
    data = json.loads(out.read_text())
    assert data["overrides"] == ["model.use_lam=false"]
    assert data["modules"]["heads"]["params"] == 2 * (3 * 32 + 3 * 32 * C)
    assert complexity_main(["--config", str(cfg), "model.k1=999"]) == 2
    assert "k1=999 must be in [1, 32]" in capsys.readouterr().err


@pytest.mark.slow
def test_vit_b16_matches_the_papers_table_3_column():
    """Table 3's "Params (M)": A 86.41, B 89.56, D 91.17, so the modules add 4.76 M parameters (the paper's
    "4.76MB"): every parameter the authors' code leaves trainable (all but the frozen BN biases) with 171
    identities, SIM's W_q / W_k / W_v and its identity head included."""
    def paper_count(**kw) -> int:
        model = build_model(SignalConfig.preset("rgbnt201", num_classes=171, num_cameras=4, **kw))
        bn_bias = sum(h.bn.bias.numel() for h in model.heads.values())
        return sum(parameter_counts(model, learnable=False).values()) - bn_bias
    a = paper_count(use_sim=False, use_gam=False, use_lam=False)
    b = paper_count(use_gam=False, use_lam=False)
    d = paper_count()
    assert (round(a / 1e6, 2), round(b / 1e6, 2), round(d / 1e6, 2)) == (86.41, 89.56, 91.17)
    assert d - a == 4_758_529 and round((d - a) / 1e6, 2) == 4.76
