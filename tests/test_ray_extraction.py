"""python -m train.extract --ray: the same feature folder as the single-process path (features,
manifest and checksums), resumable across interruptions and across both paths. One local Ray
(2 CPUs) serves the whole module; the tests that run it are slow (actors load torch)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from signal_core import SignalConfig, build_model, load_weights, save_checkpoint
from signal_core.data import read_triples_folder
from signal_core.retrieval.feature_store import read_features, read_manifest
from signal_core.retrieval.folder_features import extract_to_folder
from signal_core.retrieval.ray_extraction import ModelSource, RayOptions, extract_with_ray, start_ray
from signal_core.utils.hashing import sha256_file
from signal_core.utils.optional import MissingExtraError
from tests.test_extract_search import error_line, gallery_names, make_triples, run_extract
from train import extract


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """Tiny weights and 12 triples (3 shards of 4 with --shard-size 4)."""
    root = tmp_path_factory.mktemp("ray")
    torch.manual_seed(0)
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=3)), root / "tiny.safetensors")
    return root / "tiny.safetensors", make_triples(root / "triples", gallery_names(per_id=3))


@pytest.fixture(scope="module")
def plain(data, tmp_path_factory) -> Path:
    """The single-process folder to compare with."""
    weights, triples = data
    out = tmp_path_factory.mktemp("plain") / "feats"
    assert run_extract(weights, triples, out, "--threads", "1") == 0
    return out


@pytest.fixture(scope="module")
def ray_session():
    ray, started = start_ray(RayOptions(num_cpus=2))
    yield ray
    if started:
        ray.shutdown()


@pytest.mark.slow  # imports ray (seconds)
def test_arguments_and_missing_ray_are_one_line_errors(data, tmp_path, capsys, monkeypatch):
    weights, triples = data
    assert run_extract(weights, triples, tmp_path / "a", "--actors", "2") == 2
    assert "--actors needs --ray" in error_line(capsys)
    assert run_extract(weights, triples, tmp_path / "b", "--ray", "--engine", "onnxruntime") == 2
    assert "drop --engine" in error_line(capsys)
    assert run_extract(weights, triples, tmp_path / "c", "--ray", "ray://") == 2
    assert "not a Ray address" in error_line(capsys)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r'pip install "\.\[scale\]"'):
        start_ray(RayOptions())


@pytest.mark.slow
def test_ray_path_writes_the_same_folder(data, plain, ray_session, tmp_path, capsys):
    weights, triples = data
    out = tmp_path / "feats"
    assert run_extract(weights, triples, out, "--threads", "1", "--ray", "--actors", "2") == 0
    assert "12 features of 12 triples" in capsys.readouterr().out
    got, want = read_features(out), read_features(plain)
    assert np.abs(got.features - want.features).max() <= 1e-5
    assert got.metadata == want.metadata
    assert read_manifest(out) == read_manifest(plain)  # same shards, settings and checksums (bit-identical here)


@pytest.mark.slow
def test_interrupted_ray_run_resumes_with_or_without_ray(data, plain, ray_session, tmp_path):
    weights, triples = data
    records = read_triples_folder(triples.resolve())
    model = load_weights(weights).eval()
    out = tmp_path / "feats"
    source = ModelSource(str(weights), None, "fp32")
    model_info = {"sha256": sha256_file(weights), "path": str(weights.resolve())}
    settings = read_manifest(plain)["settings"]  # what train.extract recorded: the same run
    settings = {k: settings[k] for k in ("source", "precision", "engine", "onnx_sha256")}
    first = extract_with_ray(source, model.cfg, records, out, model_info, settings, RayOptions(actors=1), batch_size=2,
                             shard_size=4, progress=False, max_shards=1)  # stopped after one shard, as if killed
    assert (first.complete, first.shards_written, read_manifest(out)["count"]) == (False, 1, 4)
    shutil.copy(out / "shard-00000.npz", tmp_path / "kept.npz")
    middle = extract_to_folder(model, records, out, model_info, settings, batch_size=2, shard_size=4, progress=False,
                               max_shards=1)  # the single-process path goes on with the Ray run's folder
    assert (middle.complete, middle.shards_reused, middle.shards_written) == (False, 1, 1)
    resumed = extract_with_ray(source, model.cfg, records, out, model_info, settings, RayOptions(actors=1),
                               batch_size=2, shard_size=4, progress=False)
    assert (resumed.complete, resumed.shards_reused, resumed.shards_written) == (True, 2, 1)
    assert (out / "shard-00000.npz").read_bytes() == (tmp_path / "kept.npz").read_bytes()  # kept, not recomputed
    np.testing.assert_allclose(read_features(out).features, read_features(plain).features, atol=1e-5)
    assert read_manifest(out) == read_manifest(plain)
    assert extract.main(["--weights", str(weights), "--triples", str(triples), "--out", str(out), "--batch-size", "2",
                         "--shard-size", "4", "--no-progress", "--ray"]) == 0  # complete: nothing left for Ray


@pytest.mark.slow
def test_unreadable_image_on_ray_stops_then_skip_bad_finishes(data, ray_session, tmp_path, capsys):
    weights, _ = data
    names = gallery_names(ids=(1, 2), per_id=3)  # 6 triples: shard 0 = rows 0-3, shard 1 = rows 4-5
    triples = make_triples(tmp_path / "t", names)
    bad = triples / "TI" / names[4]
    bad.write_bytes(b"this is not an image")
    out = tmp_path / "f"
    assert run_extract(weights, triples, out, "--threads", "1", "--ray", "--actors", "1") == 2
    err = error_line(capsys)
    assert str(bad) in err and "--skip-bad" in err
    assert read_manifest(out)["count"] == 4  # the shard before the bad triple is kept
    assert run_extract(weights, triples, out, "--threads", "1", "--ray", "--actors", "1", "--skip-bad") == 0
    feats, rows, manifest = read_features(out)
    assert feats.shape[0] == len(names) - 1 and names[4] not in [r["name"] for r in rows]
    assert [s["name"] for s in manifest["skipped"]] == [names[4]] and str(bad) in manifest["skipped"][0]["error"]

