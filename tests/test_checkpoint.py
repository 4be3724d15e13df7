"""Our safetensors checkpoints and CLIP weight files."""
import warnings

import pytest
import torch
from open_clip.transformer import QuickGELU, VisionTransformer
from safetensors.torch import save_file

from signal_core import CheckpointError, build_model, load_checkpoint, read_checkpoint_config, save_checkpoint
from signal_core.model.clip_weights import resize_positional_embedding
from tests.helpers import make_batch


def test_safetensors_round_trip(tiny_cfg, tmp_path):
    model = build_model(tiny_cfg.replace(k1=6, selection="intersection"))
    model.train()
    images, cams, targets = make_batch(tiny_cfg)
    model(*images, cam_ids=cams, targets=targets)  # move BN running stats away from init
    path = tmp_path / "sub" / "model.safetensors"
    save_checkpoint(model, path, metadata={"epoch": "3"})
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temp file left
    assert read_checkpoint_config(path) == model.cfg
    loaded = load_checkpoint(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    assert torch.equal(model.extract_features(*images, cams), loaded.extract_features(*images, cams))


def test_loading_something_else_is_a_clear_error(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="no Signal config"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")


def _clip_like_visual(grid: int):
    """A tiny open_clip visual tower on a square grid, like the CLIP release (14x14 for 224/16)."""
    return VisionTransformer(image_size=grid * 8, patch_size=8, width=64, layers=2, heads=4, mlp_ratio=4.0,
                             output_dim=32, act_layer=QuickGELU)


def test_resize_positional_embedding_bilinear():
    posemb = torch.arange(1 + 4 * 4, dtype=torch.float).unsqueeze(1).repeat(1, 3)
    out = resize_positional_embedding(posemb, (8, 4))
    assert out.shape == (33, 3)
    assert torch.equal(out[0], posemb[0])
    grid = out[1:, 0].reshape(8, 4)
    src = posemb[1:, 0].reshape(4, 4)
    assert torch.allclose(grid.mean(), src.mean())  # bilinear keeps the ramp's mean
    assert torch.allclose(grid[0, 0], src[0, 0]) and torch.allclose(grid[-1, -1], src[-1, -1])


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "bin"])
def test_local_clip_weights_load_and_resize(tiny_cfg, tmp_path, fmt):
    clip_visual = _clip_like_visual(grid=6)
    state = {f"visual.{k}": v for k, v in clip_visual.state_dict().items()}
    state["logit_scale"] = torch.tensor(1.0)  # text-side keys are ignored
    path = tmp_path / f"clip.{fmt}"
    save_file(state, str(path)) if fmt == "safetensors" else torch.save(state, path)
    model = build_model(tiny_cfg.replace(pretrained=str(path)))
    visual = model.backbone.visual
    assert torch.equal(visual.conv1.weight, clip_visual.conv1.weight)
    block, clip_block = visual.transformer.resblocks[1], clip_visual.transformer.resblocks[1]
    assert torch.equal(block.mlp.c_fc.bias, clip_block.mlp.c_fc.bias)
    expected = resize_positional_embedding(clip_visual.positional_embedding.detach(), tiny_cfg.grid_size)
    assert torch.equal(visual.positional_embedding.detach(), expected)


def test_torchscript_needs_trust_and_wrong_weights_are_named(tiny_cfg, tmp_path):
    clip_visual = _clip_like_visual(grid=6).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(clip_visual, torch.randn(1, 3, 48, 48), check_trace=False)
    path = tmp_path / "ViT-tiny.pt"
    wrapper = torch.jit.script(_Wrap(scripted))
    wrapper.save(str(path))
    with pytest.raises(ValueError, match="trust_torchscript"):
        build_model(tiny_cfg.replace(pretrained=str(path)))
    model = build_model(tiny_cfg.replace(pretrained=str(path), trust_torchscript=True))
    assert torch.equal(model.backbone.visual.conv1.weight, clip_visual.conv1.weight)
    wide = {f"visual.{k}": v for k, v in VisionTransformer(48, 8, 96, 2, 4, 4.0, output_dim=32).state_dict().items()}
    save_file(wide, str(tmp_path / "wide.safetensors"))
    with pytest.raises(ValueError, match="wrong shapes"):
        build_model(tiny_cfg.replace(pretrained=str(tmp_path / "wide.safetensors")))


class _Wrap(torch.nn.Module):
    def __init__(self, visual):
        super().__init__()
        self.visual = visual

    def forward(self, x):
        return self.visual(x)


def test_openai_source_goes_through_open_clip(tiny_cfg, monkeypatch):
    import open_clip

    clip_visual = _clip_like_visual(grid=6)
    calls = []

    def fake_create_model(name, pretrained=None, **kwargs):
        calls.append((name, pretrained))
        clip = torch.nn.Module()
        clip.visual = clip_visual
        return clip

    monkeypatch.setattr(open_clip, "create_model", fake_create_model)
    model = build_model(tiny_cfg.replace(pretrained="openai"))
    assert calls == [("ViT-B-16-quickgelu", "openai")]
    assert torch.equal(model.backbone.visual.conv1.weight, clip_visual.conv1.weight)


# --- damaged files: a CheckpointError naming the file, never a SafetensorError / UnpicklingError ----
def _saved(tiny_cfg, tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(build_model(tiny_cfg), path)
    return path


def test_checkpoints_carry_a_checksum_of_their_tensors(tiny_cfg, tmp_path):
    from signal_core import read_checkpoint_metadata
    from signal_core.checkpoint import tensors_sha256

    model = build_model(tiny_cfg)
    path = tmp_path / "model.safetensors"
    save_checkpoint(model, path, metadata={"epoch": "3"})
    meta = read_checkpoint_metadata(path)
    assert meta["epoch"] == "3" and meta["tensors_sha256"] == tensors_sha256(model.state_dict())
    assert len(meta["tensors_sha256"]) == 64


def test_overwritten_tensor_bytes_are_detected(tiny_cfg, tmp_path):
    path = _saved(tiny_cfg, tmp_path)
    data = bytearray(path.read_bytes())
    data[-64:] = bytes(64)  # the header (config, checksum) stays intact
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{path} is corrupt: its tensor data do not match the SHA-256"):
        load_checkpoint(path)


@pytest.mark.parametrize("damage", ["random", "truncated", "empty", "pickle"])
def test_unreadable_files_name_themselves(tiny_cfg, tmp_path, damage):
    import numpy as np

    path = _saved(tiny_cfg, tmp_path)
    data = path.read_bytes()
    if damage == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"epoch": 3}, path)
    with pytest.raises(CheckpointError, match=f"^{path} "):
        load_checkpoint(path)


@pytest.mark.parametrize("payload", [[1, 2, 3], {"w": "text"}, "junk-bytes", "object"])
def test_a_pth_that_is_no_state_dict_is_a_clear_error(tiny_cfg, tmp_path, payload):
    from signal_core import SignalConfig, load_weights

    path = tmp_path / "Signal_model.pth"
    if payload == "junk-bytes":
        path.write_bytes(b"not a checkpoint\n" * 10)
    elif payload == "object":
        torch.save(SignalConfig.preset("tiny"), path)  # a pickled class: refused by weights_only=True
    else:
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_weights(path, SignalConfig.preset("tiny"))


def test_checkpoints_without_a_checksum_still_load(tiny_cfg, tmp_path):
    """Files written before checksums (the header holds the config only) load, unverified."""
    from signal_core import read_checkpoint_metadata

    model = build_model(tiny_cfg)
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"signal_config": tiny_cfg.to_json(), "epoch": "16"})
    assert "tensors_sha256" not in read_checkpoint_metadata(path)
    loaded = load_checkpoint(path)
    assert loaded.cfg == tiny_cfg and not loaded.training
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def _poisoned(tiny_cfg, path, value=float("nan")):
    """A checkpoint whose LAM offset weights hold ``value`` (its checksum matches: written as it is)."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.startswith("lam."))[0] = value
        model.heads.concat.bn.bias[:] = value
    save_checkpoint(model, path)
    return path


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_with_one_tensor_named(tiny_cfg, tmp_path, value):
    from signal_core import load_official_checkpoint, load_weights

    path = _poisoned(tiny_cfg, tmp_path / "nan.safetensors", value)
    for load in (load_checkpoint, load_weights):
        with pytest.raises(CheckpointError) as info:
            load(path)
        message = str(info.value)
        assert message.startswith(f"{path} holds NaN or infinite weights (tensor 'heads.concat.bn.bias' and 1 other")
        assert "\n" not in message
    state = {"classifier.weight": torch.zeros(6, 8), "bottleneck.bias": torch.tensor([0.0, value])}
    with pytest.raises(CheckpointError, match=r"the state dict holds NaN or infinite weights \(tensor "
                                              r"'bottleneck.bias'\)"):
        load_official_checkpoint(state, tiny_cfg)


def test_every_entry_point_refuses_non_finite_weights(tiny_cfg, tmp_path, capsys):
    """The demo, train.extract / export and --resume load through signal_core (train.evaluate and
    train.search call the same load_weights): each refuses the file with one line naming a tensor."""
    from demo.options import StartupError
    from demo.startup import load_model
    from tests.test_extract_search import gallery_names, make_triples
    from train import export, extract
    from train.checkpoints import read_training_checkpoint, save_training_checkpoint

    path = _poisoned(tiny_cfg, tmp_path / "run" / "epoch_001.safetensors")
    with pytest.raises(StartupError, match="holds NaN or infinite weights"):
        load_model(path, None, torch.device("cpu"))
    triples = make_triples(tmp_path / "t", gallery_names(ids=(1,), per_id=1))
    for main, argv in ((extract.main, ["--triples", str(triples), "--out", str(tmp_path / "f"), "--num-workers", "0"]),
                       (export.main, ["--out", str(tmp_path / "m.onnx")])):
        assert main(["--weights", str(path), *argv]) == 2
        err = capsys.readouterr().err
        assert err == f"error: {path} holds NaN or infinite weights (tensor 'heads.concat.bn.bias' and 1 other " \
                      "tensor(s)): the run that wrote it diverged or the file is damaged; use an earlier checkpoint.\n"
    model = build_model(tiny_cfg)
    save_training_checkpoint(model, torch.optim.Adam(model.parameters()), None, 1, tmp_path / "run")
    assert read_training_checkpoint(tmp_path / "run", torch.device("cpu")).epoch == 1  # finite: resumes
    _poisoned(tiny_cfg, tmp_path / "run" / "epoch_001.safetensors")
    with pytest.raises(CheckpointError, match="holds NaN or infinite weights"):
        read_training_checkpoint(tmp_path / "run", torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters())
    first = next(model.parameters())
    optimizer.state[first] = {"step": torch.tensor(1.0), "exp_avg": torch.full_like(first, float("nan")),
                              "exp_avg_sq": torch.zeros_like(first)}
    save_training_checkpoint(model, optimizer, None, 2, tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"epoch_002.state.pt holds NaN or infinite weights \(tensor "
                                              r"'optimizer.state.0.exp_avg'\)"):
        read_training_checkpoint(tmp_path / "run", torch.device("cpu"))
