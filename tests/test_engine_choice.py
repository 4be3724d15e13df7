"""--engine torch|onnxruntime|openvino for train.evaluate, train.extract and the demo (SIGNAL_ENGINE):
the same metrics / rankings as torch, the engine in the manifest, and one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from signal_core import SignalConfig, build_model, load_weights, save_checkpoint
from signal_core.deploy.export import export_onnx
from signal_core.retrieval.feature_store import read_features, read_manifest
from train import evaluate, extract
from train.synthetic import SyntheticSpec, generate

SPEC = SyntheticSpec(train_ids=3, test_ids=6, cameras=3, per_camera=2, height=64, width=32)


@pytest.fixture(scope="module", autouse=True)
def onnx_cache(tmp_path_factory):
    """On-the-fly exports go to a temporary cache, not the user's home."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIGNAL_ONNX_CACHE", str(tmp_path_factory.mktemp("onnx-cache")))
        yield


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny synthetic benchmark (RGBNT201 layout), a tiny model's weights and its config file."""
    tmp = tmp_path_factory.mktemp("engines")
    generate(SPEC, tmp / "data", progress=False)
    torch.manual_seed(0)
    weights = tmp / "tiny.safetensors"
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_cameras=SPEC.cameras)), weights)
    config = tmp / "tiny.yaml"
    config.write_text("model: {preset: tiny}\ntrain: {dataset: rgbnt201, eval_batch_size: 8, num_workers: 0}\n")
    return tmp, weights, config


def run_evaluate(setup, out: Path, *extra: str) -> int:
    tmp, weights, config = setup
    return evaluate.main(["--config", str(config), "--data-root", str(tmp / "data"), "--weights", str(weights),
                          "--no-progress", "--out", str(out), *extra])


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err and "\n" not in err, err
    return err


@pytest.mark.slow
@pytest.mark.parametrize("engine,missing", [("onnxruntime", None), ("onnxruntime", "nt"), ("openvino", None)])
def test_evaluate_engine_metrics_match_torch(setup, tmp_path, engine, missing):
    extra = ["--missing", missing] if missing else []
    assert run_evaluate(setup, tmp_path / "torch.json", *extra) == 0
    assert run_evaluate(setup, tmp_path / "engine.json", "--engine", engine, *extra) == 0
    ref, got = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("torch", "engine"))
    assert set(ref) == set(got) and ref["mAP"] > 0
    for name in ("mAP", "mINP", "R1", "R5", "R10"):
        assert abs(ref[name] - got[name]) <= 0.1, (name, ref[name], got[name])


@pytest.mark.slow
def test_evaluate_with_a_given_onnx_file(setup, tmp_path, capsys):
    _, weights, _ = setup
    export_onnx(load_weights(weights), tmp_path / "tiny.onnx")
    assert run_evaluate(setup, tmp_path / "torch.json") == 0
    onnx = str(tmp_path / "tiny.onnx")
    assert run_evaluate(setup, tmp_path / "ort.json", "--engine", "onnxruntime", "--onnx", onnx) == 0
    assert "engine onnxruntime (tiny.onnx, fp32)" in capsys.readouterr().out
    ref, got = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("torch", "ort"))
    assert abs(ref["mAP"] - got["mAP"]) <= 0.1


@pytest.mark.slow
def test_evaluate_engine_errors_are_one_line(setup, tmp_path, capsys):
    _, weights, _ = setup
    out = tmp_path / "m.json"
    assert run_evaluate(setup, out, "--engine", "tensorrt") == 2
    assert "--engine 'tensorrt': use one of torch, onnxruntime, openvino" in error_line(capsys)
    assert run_evaluate(setup, out, "--onnx", str(tmp_path / "x.onnx")) == 2
    assert "--onnx needs --engine onnxruntime or openvino" in error_line(capsys)
    assert run_evaluate(setup, out, "--engine", "onnxruntime", "--onnx", str(tmp_path / "missing.onnx")) == 2
    assert "missing.onnx not found: export one with python -m train.export" in error_line(capsys)
    torch.manual_seed(1)  # another input size: 32 x 32
    export_onnx(build_model(SignalConfig.preset("tiny", num_cameras=3, image_size=(32, 32))), tmp_path / "small.onnx")
    assert run_evaluate(setup, out, "--engine", "openvino", "--onnx", str(tmp_path / "small.onnx")) == 2
    err = error_line(capsys)
    assert "was exported for another model: 32 x 32 images" in err and "64 x 32 images" in err
    torch.manual_seed(2)  # the same geometry, other weights
    export_onnx(build_model(SignalConfig.preset("tiny", num_cameras=3)), tmp_path / "other.onnx")
    assert run_evaluate(setup, out, "--engine", "onnxruntime", "--onnx", str(tmp_path / "other.onnx")) == 2
    assert "exported from other weights" in error_line(capsys)
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    assert run_evaluate(setup, out, "--engine", "onnxruntime", "--onnx", str(tmp_path / "junk.onnx")) == 2
    assert "junk.onnx is not a readable ONNX file" in error_line(capsys)
    assert not out.exists()


def test_missing_runtime_is_one_line(setup, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert run_evaluate(setup, tmp_path / "m.json", "--engine", "onnxruntime") == 2
    line = error_line(capsys)
    assert 'pip install ".[deploy]"' in line and line.endswith("; or use --engine torch.")


@pytest.mark.slow
def test_extract_with_onnxruntime_records_the_engine_and_refuses_another(setup, tmp_path, capsys):
    tmp, weights, _ = setup
    common = ["--weights", str(weights), "--triples", str(tmp / "data" / "test"), "--batch-size", "4",
              "--num-workers", "0", "--no-progress"]
    assert extract.main(common + ["--out", str(tmp_path / "torch")]) == 0
    assert extract.main(common + ["--out", str(tmp_path / "ort"), "--engine", "onnxruntime"]) == 0
    (ref, ref_rows, _), (got, got_rows, _) = read_features(tmp_path / "torch"), read_features(tmp_path / "ort")
    assert [r["name"] for r in ref_rows] == [r["name"] for r in got_rows] and len(ref_rows) == 36
    assert np.abs(ref - got).max() <= 1e-5  # L2-normalised, cameras known
    settings = read_manifest(tmp_path / "ort")["settings"]
    assert settings["engine"] == "onnxruntime" and len(settings["onnx_sha256"]) == 64
    assert read_manifest(tmp_path / "torch")["settings"]["engine"] == "torch"
    capsys.readouterr()
    assert extract.main(common + ["--out", str(tmp_path / "ort")]) == 2  # resume with torch: refused
    assert "engine ('onnxruntime' there, 'torch' now)" in error_line(capsys)


@pytest.mark.slow
def test_demo_with_signal_engine_ranks_like_torch(tmp_path, monkeypatch):
    from demo.options import parse_options
    from demo.startup import build_engine
    from tests.demo_helpers import make_checkpoint, make_triples_folder

    weights, gallery = make_checkpoint(tmp_path / "m.safetensors"), make_triples_folder(tmp_path / "gallery")
    env = {"SIGNAL_WEIGHTS": str(weights), "SIGNAL_GALLERY": str(gallery), "SIGNAL_QUERIES": "",
           "SIGNAL_CACHE_DIR": str(tmp_path / "cache"), "SIGNAL_DEVICE": "cpu", "SIGNAL_PRECISION": "fp32"}
    ref, _ = build_engine(parse_options([], env), progress=False)
    ort, _ = build_engine(parse_options([], env | {"SIGNAL_ENGINE": "onnxruntime"}), progress=False)
    assert "features: onnxruntime" in ort.description and "SIM / LAM overlays: torch" in ort.description
    assert ort.cache_path != ref.cache_path  # the engine is part of the gallery-feature cache key
    assert torch.allclose(ort.gallery_features, ref.gallery_features, atol=1e-5)
    query = [str(gallery / d / "000002_cam1_000.png") for d in ("RGB", "NI", "TI")]
    for explain in (False, True):
        a, b = ref.search(*query, top_k=8, explain=explain), ort.search(*query, top_k=8, explain=explain)
        assert [m.index for m in a.matches] == [m.index for m in b.matches]
        assert np.allclose([m.similarity for m in a.matches], [m.similarity for m in b.matches], atol=1e-5)
        assert len(b.overlays) == (3 if explain else 0)


@pytest.mark.slow
def test_demo_engine_options_are_checked(tmp_path, monkeypatch, capsys):
    from demo.options import StartupError, parse_options

    with pytest.raises(StartupError, match="needs --engine / SIGNAL_ENGINE onnxruntime or openvino"):
        parse_options([], {"SIGNAL_ONNX": "x.onnx"})
    with pytest.raises(StartupError, match="invalid choice: 'tensorrt'"):
        parse_options(["--engine", "tensorrt"], {})
    import app
    from benchmarks.browser import free_port
    from tests.demo_helpers import make_checkpoint, make_triples_folder

    weights, gallery = make_checkpoint(tmp_path / "m.safetensors"), make_triples_folder(tmp_path / "g")
    argv = ["--weights", str(weights), "--gallery", str(gallery), "--queries", "", "--engine", "onnxruntime",
            "--onnx", str(tmp_path / "nope.onnx"), "--port", str(free_port())]
    assert app.main(argv) == 2
    assert "nope.onnx not found" in error_line(capsys)


@pytest.mark.slow
def test_report_with_an_engine_takes_its_metrics_from_it(setup, tmp_path):
    """--report --engine onnxruntime: the seven settings scored with the engine's features (within 0.1
    of torch's), the page and its figures written (the SIM / LAM drawings still come from torch)."""
    assert run_evaluate(setup, tmp_path / "torch.json", "--report", str(tmp_path / "torch")) == 0
    assert run_evaluate(setup, tmp_path / "ort.json", "--engine", "onnxruntime", "--report", str(tmp_path / "ort")) == 0
    ref, got = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("torch", "ort"))
    assert set(ref["missing"]) == set(got["missing"]) == {"none", "rgb", "nir", "tir", "rgb+nir", "rgb+tir", "nir+tir"}
    for setting, metrics in ref["missing"].items():
        for name, value in metrics.items():
            assert abs(value - got["missing"][setting][name]) <= 0.1, (setting, name)
    assert (tmp_path / "ort" / "index.html").is_file() and (tmp_path / "ort" / "selection.png").is_file()
