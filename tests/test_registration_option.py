"""Registration as a load-time option (``load_weights(..., registration=)``, ``--registration`` of train.extract,
train.search, train.evaluate and the demo): the same weights give other features on a shifted triple, the
features record it, and features of two registrations never mix (a resume or a search across them is refused)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from signal_core import SignalConfig, build_model, load_checkpoint, load_weights, save_checkpoint, with_registration
from signal_core.retrieval.feature_store import FeatureStoreError, read_features, read_manifest
from tests.test_extract_search import error_line, one_thread  # noqa: F401 - one_thread: autouse
from tests.test_extract_search import run_extract as shared_run_extract
from train import evaluate, search

NUM_CAMERAS = 3
SHIFT = (5, -4)  # (x, y) px: NIR / TIR content at p + SHIFT is RGB's at p


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=NUM_CAMERAS)), path)
    return path


def shifted_triples(root: Path, count: int = 4, size=(64, 32)) -> Path:
    """A triples folder whose NI / TI are RGB's shapes moved by ``SHIFT`` (TI with inverted contrast)."""
    rng = np.random.default_rng(0)
    for d in ("RGB", "NI", "TI"):
        (root / d).mkdir(parents=True, exist_ok=True)
    h, w = size
    for k in range(count):
        canvas = np.full((h + 24, w + 24, 3), 40, np.uint8)
        for _ in range(6):
            y, x = rng.integers(0, h + 12), rng.integers(0, w + 12)
            canvas[y:y + 10, x:x + 8] = rng.integers(60, 255, 3)
        rgb = canvas[12:12 + h, 12:12 + w]
        moved = canvas[12 - SHIFT[1]:12 - SHIFT[1] + h, 12 - SHIFT[0]:12 - SHIFT[0] + w]  # moved(p + t) = rgb(p)
        name = f"{k // 2 + 1:06d}_cam{k % NUM_CAMERAS + 1}_{k:03d}.png"
        Image.fromarray(rgb).save(root / "RGB" / name)
        Image.fromarray(moved.mean(-1).astype(np.uint8)).save(root / "NI" / name)
        Image.fromarray(255 - moved.mean(-1).astype(np.uint8)).save(root / "TI" / name)
    return root


def run_extract(weights: Path, triples: Path, out: Path, *extra: str) -> int:
    return shared_run_extract(weights, triples, out, "--shard-size", "2", *extra)  # the last --shard-size counts


def test_with_registration_keeps_the_weights_and_changes_only_the_registration(weights):
    model = load_checkpoint(weights)
    assert model.cfg.registration == "none"
    assert with_registration(model, None) is model and with_registration(model, "none") is model
    registered = load_weights(weights, registration="orientation")
    assert registered.cfg == model.cfg.replace(registration="orientation") and not registered.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), registered.state_dict().values()))
    with pytest.raises(ValueError, match="registration must be one of"):
        with_registration(model, "phase")


def test_extract_records_the_registration_and_refuses_a_resume_with_another(weights, tmp_path, capsys):
    triples = shifted_triples(tmp_path / "t")
    assert run_extract(weights, triples, tmp_path / "plain") == 0
    assert run_extract(weights, triples, tmp_path / "reg", "--registration", "orientation") == 0
    plain, reg = read_features(tmp_path / "plain"), read_features(tmp_path / "reg")
    assert "registration" not in plain.manifest["settings"]  # none: as folders written before the option
    assert reg.manifest["settings"]["registration"] == "orientation"
    assert np.abs(plain.features - reg.features).max() > 1e-3  # the shifted NI / TI were moved back
    capsys.readouterr()

    for folder, other in (("reg", ()), ("plain", ("--registration", "orientation"))):
        manifest = read_manifest(tmp_path / folder)
        manifest["shards"] = manifest["shards"][:1]  # as a killed run leaves it: a resume continues it
        (tmp_path / folder / "manifest.json").write_text(json.dumps(manifest))
        assert run_extract(weights, triples, tmp_path / folder, *other) == 2
        assert "registration" in error_line(capsys)


def test_search_uses_the_gallerys_registration_and_refuses_another(weights, tmp_path, capsys):
    triples = shifted_triples(tmp_path / "t")
    assert run_extract(weights, triples, tmp_path / "g", "--registration", "orientation") == 0
    base = ["--features", str(tmp_path / "g"), "--queries", str(triples), "--weights", str(weights), "--top-k", "1",
            "--out"]
    assert search.main([*base, str(tmp_path / "r.json")]) == 0
    assert "rank-1 same identity: 4 / 4" in capsys.readouterr().out  # the same triples: each finds itself
    assert search.main([*base, str(tmp_path / "r2.json"), "--registration", "none"]) == 2
    assert "registration 'orientation'" in error_line(capsys)
    assert run_extract(weights, triples, tmp_path / "q") == 0  # query features without registration
    capsys.readouterr()
    assert search.main(["--features", str(tmp_path / "g"), "--queries", str(tmp_path / "q"), "--out",
                        str(tmp_path / "r3.json")]) == 2
    assert "registration" in error_line(capsys)


def test_evaluate_takes_the_flag():
    args = evaluate.parse_args(["--config", "train/configs/synthetic.yaml", "--data-root", ".", "--weights", "w",
                                "--registration", "orientation"])
    assert args.registration == "orientation"
    assert evaluate.parse_args(["--config", "c", "--data-root", ".", "--untrained"]).registration is None


def test_the_demo_feature_folder_engine_refuses_another_registration(weights, tmp_path):
    from demo.search import SearchEngine

    triples = shifted_triples(tmp_path / "t")
    assert run_extract(weights, triples, tmp_path / "g", "--registration", "orientation") == 0
    with pytest.raises(FeatureStoreError, match="pass --registration orientation"):
        SearchEngine.from_feature_folder(load_checkpoint(weights), tmp_path / "g", weights=weights)
    engine = SearchEngine.from_feature_folder(load_weights(weights, registration="orientation"), tmp_path / "g",
                                              weights=weights)
    assert len(engine.gallery.entries) == 4


def test_the_demo_option_flag_environment_and_cache_key(weights):
    from demo.feature_cache import model_fingerprint
    from demo.options import StartupError, parse_options
    from demo.startup import load_model

    assert parse_options([], environ={}).registration is None  # the checkpoint's own
    assert parse_options([], environ={"SIGNAL_REGISTRATION": "orientation"}).registration == "orientation"
    assert parse_options(["--registration", "none"], environ={"SIGNAL_REGISTRATION": "orientation"}).registration \
        == "none"
    with pytest.raises(StartupError, match="expected one of none, orientation"):
        parse_options([], environ={"SIGNAL_REGISTRATION": "sift"})
    with pytest.raises(StartupError, match="torch model only"):
        parse_options(["--registration", "orientation", "--engine", "onnxruntime"], environ={})
    plain, _ = load_model(weights, None, torch.device("cpu"), "fp32")
    registered, _ = load_model(weights, None, torch.device("cpu"), "fp32", "orientation")
    assert (plain.cfg.registration, registered.cfg.registration) == ("none", "orientation")
    keys = {model_fingerprint(weights, m.cfg.to_json())["config"] for m in (plain, registered)}
    assert len(keys) == 2  # the feature cache key holds the config: the two never share a cache file
