"""``python -m benchmarks.misalignment`` on a tiny setting: models x registration evaluated on the same generated
identities at each rig shift (scaled with the input size), table / JSON / plot written, data reused."""
from __future__ import annotations

import json

import pytest

from benchmarks.misalignment import main
from signal_core import SignalConfig, build_model, save_checkpoint


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
