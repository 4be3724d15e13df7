"""ONNX export (signal_core/deploy/export.py, python -m train.export), int8 (signal_core/deploy/quantize.py) and the
feature engines (signal_core/deploy/engines.py) against PyTorch's extract_features."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from signal_core import SignalConfig, build_model, load_weights, save_checkpoint
from signal_core.checkpoint import official_key_to_ours
from signal_core.deploy.engines import load_engine
from signal_core.deploy.export import export_onnx
from tests.official_format import official_keys
from train import export as export_cli

DEMO_WEIGHTS = Path("assets/demo_model.safetensors")
DEMO = Path("assets/demo")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=3)).eval()


@pytest.fixture(scope="module")
def tiny_onnx(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny, path, batch=2)
    return path


@pytest.fixture(scope="module")
def ort_engine(tiny_onnx):
    return load_engine(tiny_onnx, kind="onnxruntime")


def inputs(cfg, batch, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, *cfg.image_size, generator=g) for _ in range(3)]


def reference(model, images, cams):
    """extract_features row by row: cam -1 -> cam_ids=None (the mean camera embedding)."""
    rows = [model.extract_features(*(x[i:i + 1] for x in images), None if c < 0 else torch.tensor([c]))
            for i, c in enumerate(cams)]
    return torch.cat(rows).numpy()


@pytest.mark.parametrize("cams", [[0, 1, 2], [-1, -1, -1], [2, -1, 0]], ids=["cameras", "unknown", "mixed"])
def test_onnx_matches_pytorch(tiny, ort_engine, cams):
    images = inputs(tiny.cfg, batch=3)  # exported at batch 2: the batch is dynamic
    engine = ort_engine
    got = engine(*images, np.array(cams))
    assert got.shape == (3, engine.feature_dim) == (3, 6 * tiny.cfg.embed_dim) and got.dtype == np.float32
    assert np.abs(got - reference(tiny, images, cams)).max() <= 1e-5
    if min(cams) >= 0 or max(cams) < 0:  # the same as one extract_features call on the batch
        whole = tiny.extract_features(*images, None if max(cams) < 0 else torch.tensor(cams)).numpy()
        assert np.abs(got - whole).max() <= 1e-5


def test_dynamic_batch_and_none_cameras(tiny, ort_engine):
    engine = ort_engine
    for batch in (1, 5):
        images = inputs(tiny.cfg, batch, seed=batch)
        expected = tiny.extract_features(*images, None).numpy()
        assert np.abs(engine(*images, None) - expected).max() <= 1e-5


def test_openvino_and_torch_engines_agree(tiny, tiny_onnx):
    images, cams = inputs(tiny.cfg, batch=3, seed=4), np.array([1, -1, 2])
    expected = reference(tiny, images, cams)
    torch_engine = load_engine(tiny, kind="torch")
    assert np.abs(torch_engine(*images, cams) - expected).max() <= 1e-6  # mixed batch: -1 per row
    direct = tiny.extract_features(*images, torch.tensor(cams)).numpy()  # the model takes -1 per row too
    assert np.abs(direct - expected).max() <= 1e-6
    with pytest.raises(ValueError, match=r"or -1 \(unknown\)"):
        tiny.extract_features(*images, torch.tensor([1, -2, 0]))
    ov = load_engine(tiny_onnx, kind="openvino", precision="fp32")
    assert ov.precision == "fp32" and ov.image_size == tiny.cfg.image_size
    assert np.abs(ov(*images, cams) - expected).max() <= 1e-4


def test_authors_format_checkpoint_is_exported_and_matched(tmp_path):
    """A tiny state dict under the authors' key names (as their Signal_model.pth holds them)."""
    torch.manual_seed(3)
    ours = build_model(SignalConfig.preset("tiny", num_classes=5, num_cameras=4)).state_dict()
    state = {}
    for key, shape in official_keys("concat").items():
        name = official_key_to_ours(key)
        if name not in ours:  # ViT-B's blocks 2..11
            continue
        value = ours[name]
        state[key] = value.reshape(value.shape[0], *([1] * (len(shape) - value.dim())), *value.shape[1:]) \
            if key.endswith("cv_embed") else value
    torch.save(state, tmp_path / "Signal_model.pth")
    model = load_weights(tmp_path / "Signal_model.pth", SignalConfig.preset("tiny"))
    assert model.cfg.num_cameras == 4
    export_onnx(model, tmp_path / "authors.onnx")
    images, cams = inputs(model.cfg, batch=2, seed=5), np.array([3, -1])
    got = load_engine(tmp_path / "authors.onnx", kind="onnxruntime")(*images, cams)
    assert np.abs(got - reference(model, images, cams)).max() <= 1e-5


def test_wrong_shape_and_camera_are_clear_errors(tiny, tiny_onnx, ort_engine):
    engine = ort_engine
    h, w = tiny.cfg.image_size
    good = inputs(tiny.cfg, batch=2)
    wrong_nir = rf"nir must be \[B, 3, H, W\] = \[B, 3, {h}, {w}\].*got shape \[2, 3, 32, 32\]"
    with pytest.raises(ValueError, match=wrong_nir):
        engine(good[0], torch.zeros(2, 3, 32, 32), good[2])
    with pytest.raises(ValueError, match=r"rgb must be \[B, 3, H, W\]"):
        engine(good[0][0], *good[1:])
    with pytest.raises(ValueError, match=r"camera ids must be in \[0, 2\] or -1"):
        engine(*good, np.array([0, 3]))
    with pytest.raises(ValueError, match="engine must be one of"):
        load_engine(tiny_onnx, kind="tensorrt")


@pytest.mark.parametrize("package", ["onnxruntime", "openvino"])
def test_missing_runtime_names_the_install_command(tiny_onnx, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
    with pytest.raises(ImportError, match=f"pip install {package}"):
        load_engine(tiny_onnx, kind=package)


def test_export_cli_and_its_errors(tiny, tmp_path, capsys):
    save_checkpoint(tiny, tmp_path / "tiny.safetensors")
    rc = export_cli.main(["--weights", str(tmp_path / "tiny.safetensors"), "--out", str(tmp_path / "t.onnx")])
    out = capsys.readouterr().out
    assert rc == 0 and (tmp_path / "t.onnx").is_file() and "max abs diff" in out
    assert float(out.split("max abs diff ")[1].split(",")[0]) <= 1e-5
    rc = export_cli.main(["--weights", str(tmp_path / "tiny.safetensors"), "--out", str(tmp_path / "q.onnx"),
                          "--precision", "int8"])
    assert rc == 2 and "needs --calibration" in capsys.readouterr().err
    rc = export_cli.main(["--weights", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "q.onnx")])
    assert rc == 2 and capsys.readouterr().err.startswith("error: ")


def test_a_model_with_registration_is_exported_only_with_registration_none(tmp_path, capsys):
    """The bundled model registers NIR / TIR (model.registration 'orientation'), which the graph cannot hold:
    export refuses it in one line that names --registration none."""
    assert load_weights(DEMO_WEIGHTS).cfg.registration == "orientation"
    rc = export_cli.main(["--weights", str(DEMO_WEIGHTS), "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "--registration none" in err and "Registration" in err, err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_int8_bundled_model_ranks_the_demo_gallery_like_fp32(tmp_path, capsys):
    """int8 calibrated on the demo gallery, exported with --registration none: every demo query's rank-1 is
    the fp32 rank-1 and the features stay close (cosine), through the CLI; with the registration as a step in
    front of the engine (docs/deploy.md) int8 ranks as the bundled model with its registration; the root
    logger is left as it was."""
    import logging

    root = logging.getLogger()
    level, filters = root.level, list(root.filters)
    rc = export_cli.main(["--weights", str(DEMO_WEIGHTS), "--out", str(tmp_path / "int8.onnx"), "--registration",
                          "none", "--precision", "int8", "--calibration", str(DEMO / "gallery"),
                          "--calibration-size", "32"])
    assert rc == 0, capsys.readouterr().err
    assert root.level == level and root.filters == filters
    registered = load_weights(DEMO_WEIGHTS)
    model = load_weights(DEMO_WEIGHTS, registration="none")
    batches = {split: next(iter(export_cli.calibration_batches(
        export_cli.calibration_records(str(DEMO / split), None, 1000), model, 1000))) for split in ("query", "gallery")}
    fp32, int8 = load_engine(model, kind="torch"), load_engine(tmp_path / "int8.onnx", kind="onnxruntime")
    assert int8.precision == "int8"
    feats = {(name, split): engine(b["rgb"], b["nir"], b["tir"], b["cam_ids"])
             for name, engine in (("fp32", fp32), ("int8", int8)) for split, b in batches.items()}
    step = {split: _registered(registered, b) for split, b in batches.items()}  # the step in front
    feats |= {("int8 registered", split): int8(*step[split], b["cam_ids"]) for split, b in batches.items()}
    feats |= {("fp32 registered", split): load_engine(registered, kind="torch")(b["rgb"], b["nir"], b["tir"],
                                                                                b["cam_ids"])
              for split, b in batches.items()}
    cos = lambda a, b: (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos(feats["fp32", "gallery"], feats["int8", "gallery"]).min() > 0.99
    assert cos(feats["fp32 registered", "gallery"], feats["int8 registered", "gallery"]).min() > 0.99
    top1 = {name: ((feats[name, "query"][:, None] - feats[name, "gallery"][None]) ** 2).sum(-1).argmin(1)
            for name in ("fp32", "int8", "fp32 registered", "int8 registered")}
    assert len(top1["fp32"]) == 30 and (top1["fp32"] == top1["int8"]).mean() >= 0.9
    assert (top1["fp32 registered"] == top1["int8 registered"]).mean() >= 0.9
    ov = load_engine(tmp_path / "int8.onnx", kind="openvino")
    query = [batches["query"][k] for k in ("rgb", "nir", "tir", "cam_ids")]
    assert cos(ov(*query), feats["int8", "query"]).min() > 0.99


def _registered(model, batch: dict) -> tuple:
    """``model.registration`` as a step in front of an exported graph: (rgb, nir, tir) with NIR / TIR warped."""
    rgb, nir, tir = (torch.from_numpy(batch[k]) for k in ("rgb", "nir", "tir"))
    with torch.no_grad():
        out = model.registration(rgb, nir, tir)
    return batch["rgb"], out.nir.numpy(), out.tir.numpy()


def _edited(source: Path, target: Path, edit) -> Path:
    """A copy of an exported graph with ``edit(proto)`` applied; its Signal metadata (weights digest) kept."""
    import onnx

    proto = onnx.load(str(source))
    edit(proto)
    onnx.save(proto, str(target))
    return target


def _nan_weight(proto) -> None:
    from onnx import numpy_helper

    tensor = next(t for t in proto.graph.initializer if t.data_type == 1 and np.prod(t.dims) > 1)
    values = numpy_helper.to_array(tensor).copy()
    values.flat[0] = np.nan
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))


def _fixed_batch(proto) -> None:
    for graph_input in proto.graph.input:
        graph_input.type.tensor_type.shape.dim[0].dim_value = 1


def _other_size(proto) -> None:
    for graph_input in proto.graph.input[:3]:
        graph_input.type.tensor_type.shape.dim[2].dim_value = 96


@pytest.fixture(scope="module")
def extract_setup(tiny, tmp_path_factory):
    """The tiny model's weights and a triples folder of 6 (train.extract, batch 2: three batches)."""
    from tests.test_extract_search import gallery_names, make_triples

    root = tmp_path_factory.mktemp("graphs")
    save_checkpoint(tiny, root / "tiny.safetensors")
    return root / "tiny.safetensors", make_triples(root / "triples", gallery_names(ids=(1, 2), per_id=3))


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("edit, words", [
    (_nan_weight, "holds NaN or infinite weights (tensor '"),
    (_fixed_batch, "takes rgb of shape [1, 3, 64, 32] (a fixed batch of 1); these weights need [batch, 3, 64, 32]"),
    (_other_size, "takes rgb of shape [batch, 3, 96, 32] (another shape); these weights need [batch, 3, 64, 32]"),
])
def test_a_broken_graph_is_refused_before_any_feature(tiny_onnx, extract_setup, edit, words, engine, tmp_path, capsys):
    """Issue 29: a graph of NaN gave exit 0 and a folder of NaN features; one of a fixed batch or another
    input size failed in the middle of the extraction."""
    from train import extract

    weights, triples = extract_setup
    graph = _edited(tiny_onnx, tmp_path / "edited.onnx", edit)
    out = tmp_path / "feats"
    assert extract.main(["--weights", str(weights), "--triples", str(triples), "--out", str(out), "--batch-size", "2",
                         "--num-workers", "0", "--no-progress", "--engine", engine, "--onnx", str(graph)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and words in err and "python -m train.export" in err, err
    assert not out.exists(), err
