"""python -m train.ablation: the paired statistics on hand-made numbers, the summary of hand-made cells,
and a tiny real grid that resumes where it stopped."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from train.ablation import GridSpec, paired_difference, summarise, t_quantile_975, write_summary
from train.ablation.__main__ import main as ablation_main
from train.ablation.grid import ROWS, cell_state, run_grid
from train.ablation.stats import mean_std
from train.synthetic import SyntheticSpec, generate


def test_t_quantiles_and_mean_std():
    assert t_quantile_975(1) == 12.706 and t_quantile_975(2) == 4.303 and t_quantile_975(30) == 2.042
    assert t_quantile_975(60) == pytest.approx(2.000, abs=2e-3)
    assert t_quantile_975(10_000) == pytest.approx(1.960, abs=1e-3)
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert math.isnan(mean_std([7.0])[1])


def test_paired_difference_on_hand_made_numbers():
    # differences 1, 2, 3: mean 2, std 1, half width 4.303 / sqrt(3) = 2.4843
    d = paired_difference({1: 10.0, 2: 12.0, 3: 14.0, 4: 99.0}, {1: 9.0, 2: 10.0, 3: 11.0})
    assert d["seeds"] == [1, 2, 3] and d["differences"] == [1.0, 2.0, 3.0]
    assert d["mean"] == pytest.approx(2.0) and d["std"] == pytest.approx(1.0)
    assert d["ci95"] == pytest.approx([2 - 2.48434, 2 + 2.48434], abs=1e-4) and not d["separates"]
    # a consistent gain separates from zero although the rows' own spread is large
    # differences 2, 3, 2, 3: mean 2.5, std sqrt(1/3), half width 3.182 * sqrt(1/3) / 2 = 0.91857
    d = paired_difference({1: 50.0, 2: 70.0, 3: 60.0, 4: 80.0}, {1: 48.0, 2: 67.0, 3: 58.0, 4: 77.0})
    assert d["mean"] == pytest.approx(2.5) and d["std"] == pytest.approx(math.sqrt(1 / 3))
    assert d["ci95"] == pytest.approx([2.5 - 0.91857, 2.5 + 0.91857], abs=1e-4) and d["separates"]
    one = paired_difference({1: 3.0}, {1: 1.0})
    assert one["mean"] == 2.0 and math.isnan(one["ci95"][0]) and not one["separates"]


def _fake_cell(cell: Path, m: float, offsets: bool = False) -> None:
    cell.mkdir(parents=True)
    (cell / "metrics.json").write_text(json.dumps({"mAP": m, "R1": m + 10, "R5": m + 20}))
    if offsets:
        fit = {"relative": {"r": 0.8, "slope": 0.5, "n": 10}}
        (cell / "offsets.json").write_text(json.dumps({s: {"nir": fit, "tir": fit} for s in ("trained", "untrained")}))


def test_summary_of_hand_made_cells(tmp_path):
    spec = GridSpec("cfg.yaml", "data", tmp_path, ("baseline", "sim", "full"), (1, 2, 3))
    for seed, (b, s, f) in {1: (50, 55, 56), 2: (60, 64, 62), 3: (40, 46, 47)}.items():
        _fake_cell(spec.cell_dir("baseline", seed), b)
        _fake_cell(spec.cell_dir("sim", seed), s)
        if seed != 3:
            _fake_cell(spec.cell_dir("full", seed), f, offsets=True)
    summary = summarise(spec)
    assert summary["rows"]["baseline"]["stats"]["mAP"]["mean"] == pytest.approx(50.0)
    assert summary["rows"]["baseline"]["stats"]["mAP"]["std"] == pytest.approx(10.0)
    (sim,) = [c for c in summary["comparisons"] if c["row"] == "sim"]
    assert sim["mAP"]["differences"] == [5, 4, 6] and sim["mAP"]["separates"]
    assert summary["missing"] == ["full/seed_3"]
    assert summary["rows"]["full"]["offsets"]["trained_nir_r"]["mean"] == pytest.approx(0.8)
    json_path, md_path = write_summary(spec)
    text = md_path.read_text()
    assert "| + SIM | 55.00 +- 9.00 |" in text and "(55.00, 64.00, 46.00)" in text
    assert "| + SIM | baseline | 5.00 [2.52, 7.48] | 5.00, 4.00, 6.00 | yes |" in text
    assert "Unfinished cells: full/seed_3." in text
    assert json.loads(json_path.read_text())["rows"]["sim"]["seeds"]["1"]["metrics"]["mAP"] == 55


def test_command_line_errors_are_one_line(tmp_path, capsys):
    assert ablation_main(["--config", "nope.yaml", "--data-root", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert ablation_main(["--config", "train/configs/alignment.yaml", "--data-root", str(tmp_path), "--out",
                          str(tmp_path), "--rows", "baseline,bogus"]) == 2
    assert "unknown row" in capsys.readouterr().err


TINY_YAML = """
model: {preset: tiny, pretrained: null}
train: {dataset: rgbnt201, epochs: 1, batch_size: 8, num_instances: 2, base_lr: 1.0e-3, backbone_lr: 1.0e-3,
        warmup_epochs: 0, num_workers: 0, checkpoint_every: 1, eval_batch_size: 16}
"""


def _history_epochs(cell: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (cell / "history.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_grid_resumes_where_it_stopped(tmp_path):
    data = tmp_path / "data"
    generate(SyntheticSpec.preset("alignment", train_ids=4, test_ids=2, cameras=2, per_camera=2), data, progress=False)
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    spec = GridSpec(str(tmp_path / "tiny.yaml"), str(data), tmp_path / "grid", ("baseline", "full"), (1,))
    run_grid(spec)
    full, base = spec.cell_dir("full", 1), spec.cell_dir("baseline", 1)
    assert cell_state(full, ROWS["full"]) == cell_state(base, ROWS["baseline"]) == "done"
    offsets = json.loads((full / "offsets.json").read_text())
    assert offsets["trained"]["nir"]["relative"]["n"] == 8 and "untrained" in offsets
    # a grid of 2 epochs killed after epoch 1 of "full" (checkpoint kept) and inside epoch 1 of "baseline"
    for name in ("metrics.json", "offsets.json"):
        (full / name).unlink()
    for path in base.iterdir():
        if path.name not in ("history.jsonl", "config.yaml", "train.log"):
            path.unlink()
    spec2 = GridSpec(spec.config, spec.data_root, spec.out, spec.rows, spec.seeds, ("train.epochs=2",))
    assert cell_state(full, ROWS["full"]) == "resume" and cell_state(base, ROWS["baseline"]) == "fresh"
    run_grid(spec2)
    assert "resuming after epoch 1" in (full / "train.log").read_text()
    assert _history_epochs(full) == [1, 2] and _history_epochs(base) == [1, 2]
    assert (full / "offsets.json").is_file() and (full / "epoch_002.safetensors").is_file()
    # a finished grid trains nothing
    stamp = (full / "metrics.json").stat().st_mtime_ns
    run_grid(spec2)
    assert (full / "metrics.json").stat().st_mtime_ns == stamp
    assert summarise(spec2)["missing"] == []
