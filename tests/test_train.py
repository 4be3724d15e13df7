"""End-to-end training and evaluation on a tiny dataset written in the RGBNT201 layout."""
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from signal_core import build_model, load_checkpoint, read_checkpoint_config, read_checkpoint_metadata, save_checkpoint
from train.__main__ import main as train_main
from train.config import load_config
from train.evaluate import main as evaluate_main

REPO = Path(__file__).resolve().parents[1]


def write_rgbnt201(root: Path, train_ids=6, test_ids=4, per_id=4, seed=0) -> Path:
    """Noise images with one base pattern per identity (plus per-image noise), two cameras."""
    rng = np.random.default_rng(seed)
    for split, ids in (("train_171", range(1, train_ids + 1)), ("test", range(201, 201 + test_ids))):
        for pid in ids:
            base = rng.integers(0, 256, (3, 32, 16, 3))
            for k in range(per_id):
                name = f"{pid:06d}_cam{k % 2 + 1}_0_{k:02d}.png"
                for m, folder in enumerate(("RGB", "NI", "TI")):
                    img = np.clip(base[m] + rng.normal(0, 20, base[m].shape), 0, 255).astype(np.uint8)
                    (root / split / folder).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(img).save(root / split / folder / name)
    return root


def write_config(path: Path, out_dir: Path, **train) -> Path:
    cfg = {"model": {"preset": "tiny"},
           "train": {"dataset": "rgbnt201", "epochs": 2, "batch_size": 8, "num_instances": 2, "num_workers": 0,
                     "warmup_epochs": 1, "checkpoint_every": 1, "eval_batch_size": 8, "output_dir": str(out_dir),
                     **train}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    data = write_rgbnt201(tmp / "RGBNT201")
    run = tmp / "run1"
    cfg = write_config(tmp / "tiny.yaml", run)
    assert train_main(["--config", str(cfg), "--data-root", str(data), "--no-progress"]) == 0
    return tmp, data, cfg, run


@pytest.mark.slow
def test_two_epoch_training_run(trained):
    _, _, _, run = trained
    records = history(run)
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert {"loss", "id_concat", "triplet_concat", "id_fused", "triplet_fused", "gam", "lam", "lr"} <= set(r)
        assert np.isfinite(r["loss"])
    assert (run / "epoch_001.safetensors").is_file() and (run / "epoch_002.state.pt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"epoch", "mAP", "mINP", "R1", "R5", "R10"}
    assert 0 < metrics["mAP"] <= 100 and metrics["R1"] <= metrics["R5"] <= metrics["R10"]


@pytest.mark.slow
def test_run_folder_records_the_resolved_config(trained):
    _, _, cfg, run = trained
    model_cfg, train_cfg = load_config(cfg)
    saved_model, saved_train = load_config(run / "config.yaml")  # a complete config: usable as --config
    assert saved_train == train_cfg
    assert saved_model == read_checkpoint_config(run / "epoch_002.safetensors") == load_checkpoint(
        run / "epoch_002.safetensors").cfg
    assert saved_model == model_cfg.replace(num_classes=6, num_cameras=2)
    text = (run / "config.yaml").read_text()
    assert "base_lr: 0.00035\n" in text and "image_size: [64, 32]\n" in text and "!!" not in text  # plain values
    stored = json.loads(read_checkpoint_metadata(run / "epoch_001.safetensors")["train_config"])
    assert stored == dataclasses.asdict(train_cfg)
    assert not list(run.glob("*.tmp"))


@pytest.mark.slow
def test_resume_repeats_the_uninterrupted_losses(trained, caplog):
    tmp, data, _, run = trained
    run2 = tmp / "run2"
    cfg2 = write_config(tmp / "tiny2.yaml", run2)
    args = ["--config", str(cfg2), "--data-root", str(data), "--no-progress",
            "--resume", str(run / "epoch_001.safetensors")]
    with caplog.at_level(logging.WARNING, logger="train"):
        assert train_main(args) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "differ from the ones it was trained with: output_dir: " in warnings[0]
    assert f"-> {str(run2)!r}" in warnings[0]
    (resumed,) = history(run2)
    original = history(run)[1]
    assert resumed["epoch"] == 2
    for key, value in original.items():
        assert resumed[key] == pytest.approx(value, rel=1e-6, abs=1e-7), key


@pytest.mark.slow
def test_resume_after_a_crash_between_history_and_checkpoint(trained):
    tmp, data, _, run = trained
    crashed = tmp / "crashed"
    crashed.mkdir()
    for name in ("epoch_001.safetensors", "epoch_001.state.pt", "history.jsonl"):
        shutil.copy(run / name, crashed / name)  # epoch 2 has its history line, not its checkpoint
    (crashed / ".epoch_002.state.pt.k3j9.tmp").write_bytes(b"half-written")
    cfg = write_config(tmp / "crashed.yaml", crashed)
    args = ["--config", str(cfg), "--data-root", str(data), "--no-progress", "--resume", str(crashed)]
    assert train_main(args) == 0
    records = history(crashed)
    assert [r["epoch"] for r in records] == [1, 2]  # not [1, 2, 2]
    for key, value in history(run)[1].items():
        assert records[1][key] == pytest.approx(value, rel=1e-6, abs=1e-7), key
    assert not list(crashed.glob("*.tmp")) and (crashed / "epoch_002.safetensors").is_file()


@pytest.mark.slow
def test_a_new_run_does_not_mix_with_an_old_one(trained, capsys):
    _, data, cfg, run = trained
    assert train_main(["--config", str(cfg), "--data-root", str(data), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run} already holds a run") and f"--resume {run}" in err
    assert [r["epoch"] for r in history(run)] == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("damaged", ["epoch_001.safetensors", "epoch_001.state.pt"])
def test_resume_from_a_damaged_checkpoint_is_a_clear_error(trained, tmp_path, capsys, damaged):
    _, data, _, run = trained
    for name in ("epoch_001.safetensors", "epoch_001.state.pt"):
        shutil.copy(run / name, tmp_path / name)
    data_bytes = bytearray((tmp_path / damaged).read_bytes())
    data_bytes[-200:] = bytes(200)
    (tmp_path / damaged).write_bytes(bytes(data_bytes))
    cfg = write_config(tmp_path / "tiny.yaml", tmp_path / "out")
    args = ["--config", str(cfg), "--data-root", str(data), "--no-progress", "--resume", str(tmp_path)]
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / damaged} ") and err.count("\n") == 1
    assert not (tmp_path / "out" / "history.jsonl").exists()


@pytest.mark.slow
def test_optimizer_state_is_read_on_the_cpu(trained, monkeypatch):
    from train import checkpoints

    _, _, _, run = trained
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(checkpoints.torch, "load", recording_load)
    ckpt = checkpoints.read_training_checkpoint(run, torch.device("cpu"))
    assert ckpt.epoch == 2 and calls == [{"map_location": "cpu", "weights_only": True}]
    assert ckpt.train_config["epochs"] == 2 and ckpt.path.name == "epoch_002.safetensors"


@pytest.mark.slow
def test_evaluate_cli_agrees_with_training(trained, tmp_path):
    _, data, cfg, run = trained
    out = tmp_path / "metrics.json"
    common = ["--config", str(cfg), "--data-root", str(data), "--weights", str(run / "epoch_002.safetensors"),
              "--no-progress", "--num-workers", "0"]
    assert evaluate_main(common + ["--out", str(out)]) == 0
    got, trained_metrics = json.loads(out.read_text()), json.loads((run / "metrics.json").read_text())
    assert set(got) == {"mAP", "mINP", "R1", "R5", "R10"}
    for key in got:
        assert got[key] == pytest.approx(trained_metrics[key], abs=1e-6)
    missing = tmp_path / "missing.json"
    assert evaluate_main(common + ["--out", str(missing), "--missing", "rn"]) == 0
    assert json.loads(missing.read_text())["mAP"] > 0
    reranked = tmp_path / "rerank.json"
    assert evaluate_main(common + ["--out", str(reranked), "--rerank"]) == 0
    assert 0 < json.loads(reranked.read_text())["mAP"] <= 100


@pytest.mark.parametrize("damage", ["overwritten", "random"])
def test_evaluate_refuses_a_damaged_checkpoint(tiny_cfg, tmp_path, capsys, damage):
    data = write_rgbnt201(tmp_path / "RGBNT201", train_ids=2, test_ids=2, per_id=2)
    cfg = write_config(tmp_path / "tiny.yaml", tmp_path / "run")
    weights = tmp_path / "model.safetensors"
    save_checkpoint(build_model(tiny_cfg), weights)
    if damage == "random":
        weights.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    else:
        raw = bytearray(weights.read_bytes())
        raw[-100:] = bytes(100)
        weights.write_bytes(bytes(raw))
    code = evaluate_main(["--config", str(cfg), "--data-root", str(data), "--weights", str(weights), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {weights} ") and err.count("\n") == 1
    assert ("is corrupt" if damage == "overwritten" else "is not a readable safetensors checkpoint") in err


def test_bad_data_root_and_config_are_clear_errors(tmp_path, capsys):
    cfg = write_config(tmp_path / "tiny.yaml", tmp_path / "run")
    assert train_main(["--config", str(cfg), "--data-root", str(tmp_path / "nowhere")]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown train setting"):
        load_config(cfg, ["train.epochz=3"])
    with pytest.raises(ValueError, match="must look like"):
        load_config(cfg, ["epochs=3"])
    model_cfg, train_cfg = load_config(cfg, ["model.k1=4", "train.epochs=7"])
    assert model_cfg.k1 == 4 and train_cfg.epochs == 7


@pytest.mark.parametrize("name", ["rgbnt201", "rgbnt100", "msvr310"])
def test_dataset_presets_load(name):
    model_cfg, cfg = load_config(REPO / "train" / "configs" / f"{name}.yaml")
    assert cfg.dataset == name and model_cfg.pretrained == "openai"


@pytest.mark.slow
def test_distributed_training_with_two_cpu_processes(tmp_path):
    data = write_rgbnt201(tmp_path / "RGBNT201")
    cfg = write_config(tmp_path / "tiny.yaml", tmp_path / "ddp", epochs=1, batch_size=8)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "train",
           "--config", str(cfg), "--data-root", str(data), "--no-progress", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)  # bounds a hang
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["mAP"] > 0
    assert (tmp_path / "ddp" / "epoch_001.safetensors").is_file()
