"""``python -m benchmarks.misalignment`` on a tiny setting: models x registration evaluated on the same generated
identities at each rig shift (scaled with the input size), table / JSON / plot written, data reused."""
from __future__ import annotations

import json

import pytest
import torch

from benchmarks.misalignment import METRICS, main, markdown
from signal_core import SignalConfig, build_model, save_checkpoint
from signal_core.utils.hashing import sha256_file


@pytest.mark.slow
def test_the_misalignment_benchmark_runs_on_a_tiny_setting(tmp_path, capsys):
    weights = tmp_path / "tiny.safetensors"
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=3, num_cameras=4)), weights)
    out = tmp_path / "out"
    argv = ["--weights", f"{weights}=none", "--weights", f"{weights}=orientation", "--out", str(out),
            "--shifts", "0", "8", "--seeds", "5", "--test-ids", "2", "--threads", "1"]
    assert main(argv) == 0
    result = json.loads((out / "misalignment.json").read_text())
    assert [(r["model"].split(", ")[1], r["shift_px"]) for r in result["rows"]] == [
        ("registration none", 0), ("registration orientation", 0),
        ("registration none", 8), ("registration orientation", 8)]
    assert all(0 <= r["mAP"] <= 100 and 0 <= r["R1"] <= 100 for r in result["rows"])
    spec = json.loads((out / "data" / "64x32" / "seed5_shift8" / "synthetic.json").read_text())["spec"]
    assert (spec["rig_shift"], spec["misalign"], spec["test_ids"], spec["seed"]) == (4.0, 1.0, 2, 5)  # x 32 / 64
    table = (out / "misalignment.md").read_text()
    assert "| mAP (mean +- std over seeds 5) | 0 px | 8 px |" in table and "registration orientation" in table
    assert (out / "misalignment.png").read_bytes()[:4] == b"\x89PNG"
    stamp = (out / "data" / "64x32" / "seed5_shift8" / "synthetic.json").stat().st_mtime_ns
    assert main(argv) == 0  # the generated data are reused, not written again
    assert (out / "data" / "64x32" / "seed5_shift8" / "synthetic.json").stat().st_mtime_ns == stamp
    capsys.readouterr()


def test_a_weights_flag_that_names_no_file_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--weights", str(tmp_path / "missing.safetensors=orient"), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "is not a checkpoint file" in capsys.readouterr().err


@pytest.mark.slow
def test_a_trained_row_pairs_its_models_with_the_seeds_and_a_rerun_keeps_the_cells(tmp_path, capsys):
    paths = []
    for k in range(2):
        torch.manual_seed(k)
        paths.append(tmp_path / f"seed{k}" / "last.safetensors")
        paths[-1].parent.mkdir()
        save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=3, num_cameras=4)), paths[-1])
    out = tmp_path / "out"
    argv = ["--trained", "two seeds", *map(str, paths), "--out", str(out), "--shifts", "0", "8",
            "--seeds", "5", "6", "--test-ids", "2", "--threads", "1"]
    assert main(argv) == 0
    first = json.loads((out / "misalignment.json").read_text())
    pairs = [(r["weights"], r["sha256"], r["seed"], r["shift_px"]) for r in first["rows"]]
    digests = [sha256_file(p) for p in paths]
    assert pairs == [("last.safetensors", digests[0], 5, 0), ("last.safetensors", digests[0], 5, 8),
                     ("last.safetensors", digests[1], 6, 0), ("last.safetensors", digests[1], 6, 8)]
    assert first["trained"] == {"two seeds": ["seed0/last.safetensors=stored", "seed1/last.safetensors=stored"]}
    assert str(tmp_path) not in (out / "misalignment.json").read_text()  # no machine paths in what is published
    summary = first["summary"]["two seeds"]["8"]["mAP"]
    assert summary["values"] == [first["rows"][1]["mAP"], first["rows"][3]["mAP"]]
    assert "two seeds: one model per seed of data (seed0 on seed 5, seed1 on seed 6)." in (
        out / "misalignment.md").read_text()
    capsys.readouterr()

    assert main([*argv, "--shifts", "0", "8", "13"]) == 0  # only the new shift is evaluated
    printed = capsys.readouterr().out
    assert "kept 4 cells" in printed and printed.count("two seeds: mAP") == 2
    again = json.loads((out / "misalignment.json").read_text())
    assert [r for r in again["rows"] if r["shift_px"] != 13] == first["rows"]
    assert again["kept_cells"] == 4

    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=3, num_cameras=4)), paths[1])
    assert main(argv) == 0  # seed 6's model changed: its cells are evaluated again, seed 5's kept
    assert "kept 2 cells" in capsys.readouterr().out


def test_a_trained_row_has_one_checkpoint_per_seed_at_most(tmp_path, capsys):
    weights = tmp_path / "tiny.safetensors"
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=3, num_cameras=4)), weights)
    with pytest.raises(SystemExit) as exit_info:
        main(["--trained", "row", str(weights), str(weights), "--seeds", "1", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--trained 'row': 2 checkpoints for 1 seeds (1); give one checkpoint per seed, at most" in err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "out")])
    assert "give at least one row" in capsys.readouterr().err


def test_a_row_with_fewer_seeds_says_so_in_the_table():
    summary = {"a": {"0": {m: {"mean": 1.0, "std": 0.0, "values": [1.0, 1.0]} for m in METRICS}},
               "b": {"0": {m: {"mean": 2.0, "std": 0.0, "values": [2.0]} for m in METRICS}}}
    result = {"shifts_px": [0], "seeds": [7, 8], "summary": summary, "rows": [], "test_ids": 2, "jitter_px": 1,
              "wall_seconds": 1, "machine": {"cpu": "x", "cpu_count": 2, "torch_threads": 1}, "flags": {}}
    table = markdown(result)
    assert "| a | 1.00 +- 0.00 |" in table and "| b (seeds 1 of 2) | 2.00 +- 0.00 |" in table
