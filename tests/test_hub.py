"""Weights on the Hub: Hub-style folders (save and load), their model card, the converter of the authors'
checkpoint, and the one resolver of ``--weights`` (files, folders, ``hf-hub:`` / ``hf://`` names from an
offline Hugging Face cache, a FIFO refused)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from signal_core import (
    CardFacts,
    CheckpointError,
    SignalConfig,
    SignalModel,
    build_model,
    load_official_checkpoint,
    load_weights,
    resolve_weights,
    save_checkpoint,
    save_pretrained,
)
from signal_core.checkpoint import official_key_to_ours
from signal_core.retrieval.feature_store import read_features, read_manifest
from signal_core.utils.hashing import sha256_file
from signal_core.weights_source import WeightsSourceError, parse_hub_name
from tests.official_format import official_keys, official_state
from tests.test_extract_search import error_line, gallery_names, make_triples, one_thread, run_extract  # noqa: F401 - one_thread: autouse
from tests.test_train import write_config, write_rgbnt201
from train import convert, evaluate, search

REPO = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def features(model: SignalModel, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    images = [torch.randn(3, 3, *model.cfg.image_size, generator=g) for _ in range(3)]
    with torch.no_grad():
        return model.eval().extract_features(*images, cam_ids=torch.tensor([0, 1, 2]))


@pytest.fixture(scope="module")
def tiny_model() -> SignalModel:
    torch.manual_seed(0)
    return build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=3)).eval()


@pytest.fixture(scope="module")
def hub_folder(tiny_model, tmp_path_factory) -> Path:
    facts = CardFacts(source="Trained by the test.", dataset="rgbnt201", repo_id="signal-test/tiny",
                      metrics={"mAP": 12.345, "mINP": 1.0, "R1": 20.0, "R5": 40.0, "R10": 60.0})
    return save_pretrained(tiny_model, tmp_path_factory.mktemp("hub") / "tiny", facts)


def fill_hub_cache(cache: Path, repo_id: str, files: dict[str, Path], commit: str = COMMIT) -> Path:
    """What ``hf download`` leaves in the cache: ``models--owner--name/blobs/<sha>``, ``snapshots/<commit>/<file>``
    (a link to its blob) and ``refs/main`` (the commit)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    for name, source in files.items():
        data = source.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return repo / "snapshots" / commit


@pytest.fixture
def offline_cache(tmp_path, monkeypatch, hub_folder) -> Path:
    """An offline Hugging Face cache (HF_HUB_OFFLINE=1) holding ``signal-test/tiny`` (the Hub folder)."""
    import huggingface_hub.constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # read once, at import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    fill_hub_cache(cache, "signal-test/tiny", {n: hub_folder / n for n in ("model.safetensors", "config.json",
                                                                            "README.md")})
    return cache


# --- Hub-style folders ---------------------------------------------------------------------------------
def test_a_saved_folder_loads_back_with_the_same_features(tiny_model, hub_folder):
    assert sorted(p.name for p in hub_folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = load_weights(hub_folder)
    assert torch.allclose(features(loaded), features(tiny_model), atol=1e-6, rtol=0)
    rebuilt = SignalModel(SignalConfig.from_json_file(hub_folder / "config.json"))  # config.json alone rebuilds it
    assert rebuilt.cfg == tiny_model.cfg
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in
                                                                     tiny_model.state_dict().items()}


def test_the_card_is_a_hub_model_card_with_the_facts(hub_folder):
    from huggingface_hub import ModelCard

    card = ModelCard.load(hub_folder / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "mit" and data["library_name"] == "signal-reid" and data["datasets"] == ["RGBNT201"]
    assert {"re-identification", "person-reid", "safetensors"} <= set(data["tags"])
    assert data["metrics"] == ["mAP", "mINP", "CMC"]
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"mAP": 12.35, "mINP": 1.0, "R1": 20.0, "R5": 40.0, "R10": 60.0}
    digest = hashlib.sha256((hub_folder / "model.safetensors").read_bytes()).hexdigest()
    text = card.text
    assert f"sha256 `{digest}`" in text
    for words in ("## Training data", "4,787 RGB / NIR / TIR image triples of 201", "same camera left out",
                  "| 12.35 | 1.00 | 20.00 | 40.00 | 60.00 |", "| 80.3 | 85.2 | 91.4 | 93.7 |", "AAAI 2026",
                  "## Licence", 'load_weights("hf-hub:signal-test/tiny")', "Trained by the test."):
        assert words in text, words


def test_a_folder_of_bare_safetensors_takes_its_config_json(tiny_model, tmp_path):
    """PyTorchModelHubMixin writes model.safetensors without our header: config.json gives the model."""
    folder = tmp_path / "mixin"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in tiny_model.state_dict().items()}, str(folder / "model.safetensors"))
    tiny_model.cfg.save_json(folder / "config.json")
    assert torch.allclose(features(load_weights(folder)), features(tiny_model), atol=1e-6, rtol=0)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no Signal config"):
        load_weights(folder)


def test_a_config_json_of_other_weights_is_refused(tiny_model, hub_folder, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((hub_folder / "model.safetensors").read_bytes())
    tiny_model.cfg.replace(k1=4).save_json(folder / "config.json")
    with pytest.raises(CheckpointError, match="config.json does not describe the model in model.safetensors"):
        load_weights(folder)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a valid Signal config"):
        load_weights(folder)


def tiny_official_state(model: SignalModel) -> dict[str, torch.Tensor]:
    """``model``'s weights under the authors' key names and shapes (tests/official_format.py's key list)."""
    ours = model.state_dict()
    state = {}
    for key, shape in official_keys("concat").items():
        name = official_key_to_ours(key)
        if name in ours:
            value = ours[name].clone()
            state[key] = value.reshape(value.shape[0], *shape[1:-1], -1) if key.endswith("cv_embed") else value
    return state


def test_the_authors_checkpoint_saved_as_a_folder_loads_the_same(tiny_model, tmp_path):
    pth = tmp_path / "Signal_model.pth"
    torch.save(tiny_official_state(tiny_model), pth)
    cfg = tiny_model.cfg.replace(num_classes=None, num_cameras=None)
    official = load_official_checkpoint(pth, cfg)
    assert torch.allclose(features(official), features(tiny_model), atol=1e-6, rtol=0)
    save_pretrained(official, tmp_path / "converted")
    assert torch.allclose(features(load_weights(tmp_path / "converted")), features(official), atol=1e-6, rtol=0)


@pytest.mark.slow
def test_convert_command_turns_the_authors_checkpoint_into_a_folder(tmp_path, capsys):
    """The full-size RGBNT201 checkpoint in the authors' format (random values) through python -m train.convert."""
    pth = tmp_path / "Signal_model.pth"
    torch.save(official_state("concat", seed=0), pth)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"mAP": 80.1, "mINP": 60.2, "R1": 84.9, "R5": 91.0, "R10": 93.5}))
    out = tmp_path / "hub"
    assert convert.main(["--weights", str(pth), "--dataset", "rgbnt201", "--out", str(out), "--metrics", str(metrics),
                         "--origin", "the authors' Baidu drive", "--repo-id", "someone/signal-rgbnt201"]) == 0
    printed = capsys.readouterr().out
    assert "hf upload someone/signal-rgbnt201" in printed
    official = load_official_checkpoint(pth, SignalConfig.preset("rgbnt201"))
    assert torch.allclose(features(load_weights(out)), features(official), atol=1e-6, rtol=0)
    card = (out / "README.md").read_text()
    assert f"`Signal_model.pth` (sha256 `{sha256_file(pth)}`, obtained from the authors' Baidu drive)" in card
    assert f"sha256 `{sha256_file(out / 'model.safetensors')}`" in card and "| 80.10 | 60.20 |" in card
    assert "largest absolute difference 0.0e+00" in card


def test_convert_needs_the_dataset_of_an_authors_checkpoint_and_good_metrics(tmp_path, capsys):
    pth = tmp_path / "Signal_model.pth"
    torch.save({"x": torch.zeros(1)}, pth)
    assert convert.main(["--weights", str(pth), "--out", str(tmp_path / "o")]) == 2
    assert "give --dataset (rgbnt201|rgbnt100|msvr310)" in error_line(capsys)
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"mAP": 0.8}))
    assert convert.main(["--weights", str(pth), "--dataset", "rgbnt201", "--out", str(tmp_path / "o"),
                         "--metrics", str(bad)]) == 2
    assert "give the JSON of python -m train.evaluate --out" in error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_convert_never_replaces_files_it_did_not_write(tmp_path, capsys):
    """Once (the second probe): --out holding the user's README.md, or the source weights themselves, exited 0
    and replaced them."""
    weights = tmp_path / "tiny.safetensors"
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=3)), weights)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("precious")
    assert convert.main(["--weights", str(weights), "--out", str(notes)]) == 2
    assert "already holds files: give a new folder, or --overwrite" in error_line(capsys)
    assert (notes / "README.md").read_text() == "precious"
    inside = tmp_path / "cv"
    inside.mkdir()
    (inside / "model.safetensors").write_bytes(weights.read_bytes())
    assert convert.main(["--weights", str(inside / "model.safetensors"), "--out", str(inside), "--overwrite"]) == 2
    assert "holds --weights" in error_line(capsys)
    assert convert.main(["--weights", str(weights), "--out", str(notes), "--overwrite"]) == 0
    assert (notes / "config.json").is_file() and (notes / "README.md").read_text() != "precious"


# --- the resolver ----------------------------------------------------------------------------------------
def test_hub_names_parse_and_bad_ones_say_how_to_write_them():
    assert parse_hub_name("hf-hub:me/signal").repo_id == "me/signal"
    name = parse_hub_name(f"hf-hub:me/signal@{COMMIT}")
    assert (name.repo_id, name.revision, name.filename) == ("me/signal", COMMIT, None)
    name = parse_hub_name("hf://me/signal@v1.0/rgbnt201/Signal_model.pth")
    assert (name.repo_id, name.revision, name.filename) == ("me/signal", "v1.0", "rgbnt201/Signal_model.pth")
    assert parse_hub_name("hf://me/signal").filename is None
    for bad in ("hf-hub:signal", "hf-hub:me/signal/file", "hf://me", "hf://me//x", "hf-hub:me/sig nal",
                "hf-hub:me/signal@"):
        with pytest.raises(WeightsSourceError, match="is not a Hub name: write hf"):
            parse_hub_name(bad)
    for other in ("hf://datasets/me/signal/model.safetensors", "hf://spaces/me/signal/model.safetensors"):
        with pytest.raises(WeightsSourceError, match="weights are read from model repositories"):
            parse_hub_name(other)


def test_a_fifo_or_a_missing_file_is_one_line_never_a_wait(tmp_path, capsys):
    fifo = tmp_path / "weights.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(WeightsSourceError, match=r"is a FIFO \(named pipe\), not a weights file"):
        load_weights(fifo)
    triples = make_triples(tmp_path / "t", gallery_names(ids=(1,), per_id=1))
    assert run_extract(fifo, triples, tmp_path / "f") == 2
    assert "is a FIFO (named pipe), not a weights file: give a .safetensors checkpoint" in error_line(capsys)
    with pytest.raises(WeightsSourceError, match="not found: give a .safetensors checkpoint"):
        resolve_weights(tmp_path / "none.safetensors")
    with pytest.raises(WeightsSourceError, match="is a folder without model.safetensors"):
        resolve_weights(tmp_path)


def test_hub_names_resolve_from_the_offline_cache(offline_cache, hub_folder, tiny_model):
    snapshot = offline_cache / "models--signal-test--tiny" / "snapshots" / COMMIT
    for spec in ("hf-hub:signal-test/tiny", f"hf-hub:signal-test/tiny@{COMMIT}", "hf://signal-test/tiny",
                 "hf://signal-test/tiny/model.safetensors", f"hf://signal-test/tiny@{COMMIT}/model.safetensors"):
        assert resolve_weights(spec) == snapshot / "model.safetensors", spec
    assert torch.allclose(features(load_weights("hf-hub:signal-test/tiny")), features(tiny_model), atol=1e-6, rtol=0)


@pytest.mark.parametrize("spec, command", [
    ("hf-hub:signal-test/absent", "download signal-test/absent"),
    ("hf-hub:signal-test/tiny@v9", "download signal-test/tiny --revision v9"),
    ("hf://signal-test/tiny/other.pth", "download signal-test/tiny other.pth"),
])
def test_a_name_missing_from_the_offline_cache_says_what_to_download(offline_cache, spec, command):
    with pytest.raises(WeightsSourceError) as info:
        resolve_weights(spec)
    message = str(info.value)
    assert message.startswith(f"'{spec}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: ")
    assert f"`hf {command}`" in message and "\n" not in message


def test_extract_and_search_take_hub_names(offline_cache, hub_folder, tmp_path, capsys):
    gallery = make_triples(tmp_path / "gallery", gallery_names(ids=(1, 2), per_id=2))
    queries = make_triples(tmp_path / "queries", gallery_names(ids=(1, 2), per_id=1), seed=1)
    assert run_extract(hub_folder / "model.safetensors", gallery, tmp_path / "g_local") == 0
    local = read_features(tmp_path / "g_local")
    for i, spec in enumerate(("hf-hub:signal-test/tiny", "hf://signal-test/tiny/model.safetensors")):
        assert run_extract(spec, gallery, tmp_path / f"g_hub{i}") == 0
        assert (read_features(tmp_path / f"g_hub{i}").features == local.features).all()
        assert read_manifest(tmp_path / f"g_hub{i}")["model"]["sha256"] == sha256_file(hub_folder / "model.safetensors")
    for spec in ("hf://signal-test/tiny/model.safetensors", "hf-hub:signal-test/tiny"):
        out = tmp_path / "results.json"
        assert search.main(["--features", str(tmp_path / "g_hub0"), "--queries", str(queries), "--weights", spec,
                            "--top-k", "2", "--out", str(out), "--device", "cpu"]) == 0
        results = json.loads(out.read_text())["results"]
        assert len(results) == 2 and all(len(r["matches"]) == 2 for r in results)
    capsys.readouterr()
    assert search.main(["--features", str(tmp_path / "g_hub0"), "--queries", str(queries), "--weights",
                        "hf-hub:signal-test/gone", "--out", str(out)]) == 2
    assert "`hf download signal-test/gone`" in error_line(capsys)


def test_evaluate_takes_hub_names(offline_cache, hub_folder, tmp_path, capsys):
    data = write_rgbnt201(tmp_path / "RGBNT201", train_ids=2, test_ids=3, per_id=2)
    cfg = write_config(tmp_path / "tiny.yaml", tmp_path / "run")
    common = ["--config", str(cfg), "--data-root", str(data), "--no-progress", "--num-workers", "0", "--device", "cpu"]
    got = {}
    specs = (str(hub_folder), f"hf-hub:signal-test/tiny@{COMMIT}", "hf://signal-test/tiny/model.safetensors")
    for spec in specs:
        assert evaluate.main([*common, "--weights", spec, "--out", str(tmp_path / "m.json")]) == 0
        got[spec] = json.loads((tmp_path / "m.json").read_text())
    assert got[specs[0]]["mAP"] > 0 and got[specs[0]] == got[specs[1]] == got[specs[2]]
    capsys.readouterr()
    assert evaluate.main([*common, "--weights", "hf-hub:signal-test/gone"]) == 2
    assert "`hf download signal-test/gone`" in error_line(capsys)


def test_the_demo_resolves_through_the_library(offline_cache, tmp_path, monkeypatch):
    from demo.options import StartupError
    from demo.startup import resolve_weights as demo_resolve

    monkeypatch.chdir(tmp_path)  # a relative path is also looked up under the repository root

    assert demo_resolve("hf-hub:signal-test/tiny").name == "model.safetensors"
    assert demo_resolve("assets/demo_model.safetensors") == REPO / "assets" / "demo_model.safetensors"
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(StartupError, match="is a FIFO"):
        demo_resolve(str(tmp_path / "pipe"))
    with pytest.raises(StartupError, match="`hf download signal-test/gone`"):
        demo_resolve("hf-hub:signal-test/gone")


@pytest.mark.slow
def test_the_commands_read_a_prefilled_cache_with_the_environment_alone(hub_folder, tmp_path):
    """No monkeypatching: a fresh ``python -m train.extract`` with HF_HOME and HF_HUB_OFFLINE=1 only."""
    fill_hub_cache(tmp_path / "hf" / "hub", "signal-test/tiny",
                   {n: hub_folder / n for n in ("model.safetensors", "config.json", "README.md")})
    gallery = make_triples(tmp_path / "gallery", gallery_names(ids=(1,), per_id=2))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "train.extract", "--triples", str(gallery), "--num-workers", "0",
               "--no-progress", "--device", "cpu", "--threads", "1"]
    done = subprocess.run([*command, "--weights", "hf-hub:signal-test/tiny", "--out", str(tmp_path / "f")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert read_manifest(tmp_path / "f")["model"]["sha256"] == sha256_file(hub_folder / "model.safetensors")
    done = subprocess.run([*command, "--weights", "hf-hub:signal-test/gone", "--out", str(tmp_path / "g")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "is not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in done.stderr
