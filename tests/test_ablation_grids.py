"""python -m train.ablation --grid: the named grids' rows (valid configs, k1 scaled to the token count),
their statistics and sweep plots on hand-made cells, the grid a folder holds, and the protocol every table
states (last epoch, the labelled test-selected one, or the labelled validation-selected one)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from signal_core import SignalConfig, build_model
from train.ablation import GRIDS, build_grid, summarise, write_summary
from train.ablation.__main__ import main as ablation_main
from train.ablation.grid import cell_overrides
from train.ablation.grids import scaled_k1
from train.ablation.plot import band, sweep_points
from train.ablation.record import GRID_FILE, benchmark_digest, cell_record, write_grid_name, write_record
from train.config import load_config, resolved_config

from .test_ablation import _hand_made_spec, _tiny_benchmark

TINY = SignalConfig.preset("tiny")  # 8 x 4 = 32 tokens per modality


def _spec(tmp_path: Path, grid: str, seeds=(1, 2, 3), **kw):
    spec = _hand_made_spec(tmp_path, (), seeds)
    g = build_grid(grid, TINY)
    return dataclasses.replace(spec, **{"rows": tuple(g.rows), "grid": g, **kw})


def _cell(spec, row: str, seed: int, m: float, history: list | None = None, config: bool = False) -> Path:
    """A finished cell of ``spec``: its record, metrics (R1 = mAP + 10), and on request a history and the
    resolved config python -m train writes."""
    cell = spec.cell_dir(row, seed)
    cell.mkdir(parents=True)
    write_grid_name(spec.out, spec.grid.name)  # as run_grid does before training
    overrides = cell_overrides(spec, spec.grid.rows[row], seed)
    write_record(cell, cell_record(spec.config, overrides, benchmark_digest(spec.data_root)))
    (cell / "metrics.json").write_text(json.dumps({"epoch": 3, "mAP": m, "R1": m + 10, "R5": m + 20}))
    if history is not None:
        (cell / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    if config:
        model_cfg, train_cfg = load_config(spec.config, overrides)
        resolved = resolved_config(model_cfg.replace(num_classes=6, num_cameras=2), train_cfg)
        (cell / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(resolved))))
    return cell


@pytest.mark.parametrize("name", GRIDS)
def test_every_rows_overrides_build_a_valid_model(name, tmp_path):
    spec = _spec(tmp_path, name)
    for row in spec.grid.rows.values():
        model_cfg, _ = load_config(spec.config, cell_overrides(spec, row, 1))
        model = build_model(model_cfg.replace(num_classes=4, num_cameras=2))
        assert model.cfg.k1 <= model.cfg.num_patches
    refs = {ref for _, ref in spec.grid.comparisons}
    assert refs and all(key in spec.grid.rows for pair in spec.grid.comparisons for key in pair)
    if name != "table3":  # the paper's reference model in every reference row
        for ref in refs:
            model = spec.grid.rows[ref].model
            assert (model["selection"], model["share_offsets"], model["k1"]) == ("union", False, 20)
            assert model["alpha"] == model["beta"] == 0.2 and model["use_sim"] and model["use_gam"]


def test_k1_is_scaled_to_the_token_count():
    assert scaled_k1(128) == 80 and scaled_k1(32) == 20 and scaled_k1(2) == 1
    assert [r.model["k1"] for r in build_grid("fig5a", TINY).rows.values()] == [8, 12, 16, 20, 24, 28, 32]
    vit = build_grid("fig5a", SignalConfig.preset("rgbnt201"))
    assert [r.model["k1"] for r in vit.rows.values()] == [32, 48, 64, 80, 96, 112, 128]
    assert {ref for _, ref in vit.comparisons} == {"k1_80"}
    assert build_grid("table4", TINY).comparisons == (("intersection", "union"),)
    assert build_grid("table5", TINY).rows["sharing"].model["share_offsets"] is True
    with pytest.raises(ValueError, match="unknown grid 'table9'"):
        build_grid("table9", TINY)


def test_sweep_statistics_and_plot_on_hand_made_numbers(tmp_path):
    spec = _spec(tmp_path, "fig5b", rows=("alpha_0.0", "alpha_0.2", "alpha_1.0", "beta_0.2"))
    hand = {"alpha_0.0": (10.0, 12.0, 14.0), "alpha_0.2": (11.0, 12.0, 16.0), "alpha_1.0": (9.0, 9.5, 10.0),
            "beta_0.2": (20.0, 20.0, 20.0)}
    for row, values in hand.items():
        for seed, m in enumerate(values, start=1):
            _cell(spec, row, seed, m, config=row == "beta_0.2" and seed == 1)
    summary = summarise(spec)
    # alpha 0 - alpha 0.2 per seed: -1, 0, -2: mean -1, std 1, half width 4.303 / sqrt(3) = 2.4843
    (zero,) = [c for c in summary["comparisons"] if c["row"] == "alpha_0.0"]
    assert zero["reference"] == "alpha_0.2" and zero["mAP"]["differences"] == [-1.0, 0.0, -2.0]
    assert zero["mAP"]["ci95"] == pytest.approx([-1 - 2.48434, -1 + 2.48434], abs=1e-4) and not zero["mAP"]["separates"]
    # alpha 1 - alpha 0.2: -2, -2.5, -6: mean -3.5, std 2.1794, half width 5.4144: does not separate either
    (one,) = [c for c in summary["comparisons"] if c["row"] == "alpha_1.0"]
    assert one["mAP"]["mean"] == pytest.approx(-3.5) and one["mAP"]["ci95"][1] == pytest.approx(1.9144, abs=1e-3)
    curves = sweep_points(summary)
    alpha = curves[0]["points"]
    # (x, mean, low, high, n, paper): 10, 12, 14 -> mean 12, std 2, band 12 -+ 4.303 * 2 / sqrt(3)
    assert alpha[0][:2] == (0.0, 12.0) and alpha[0][2:4] == pytest.approx((12 - 4.96869, 12 + 4.96869), abs=1e-4)
    assert alpha[1][5] == 79.0 and alpha[0][5] is None  # the paper gives its alpha = 0.2 point only
    assert curves[1]["points"] == [(0.2, 20.0, 20.0, 20.0, 3, 80.3)]
    assert band([5.0]) == (5.0, 5.0, 5.0)
    json_path, md_path = write_summary(spec)
    png = spec.out / "fig5b.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = md_path.read_text()
    assert "Fig. 5 (b)" in text and "Protocol: last epoch" in text
    assert "| + SIM + GAM, alpha = 0.2 | 13.00 +- 2.65 |" in text and "| 79.0 / 82.8 |" in text
    data = json.loads(json_path.read_text())
    assert data["protocol"] == "last" and data["grid"] == "fig5b"
    cost = data["rows"]["beta_0.2"]["complexity"]  # measured from the row's model (6 identities, 2 cameras)
    assert cost["heads"]["params"] == 2 * (3 * 32 + 3 * 32 * 6) and data["rows"]["alpha_0.0"]["complexity"] is None
    assert "| full, alpha = 0.2, beta = 0.2 | " in text.split("Complexity measured")[1]


def test_the_test_selected_protocol_is_an_option_and_labelled(tmp_path, capsys):
    spec = _spec(tmp_path, "table4", seeds=(1,))
    history = [{"epoch": e, "loss": 1.0, "test": {"mAP": m, "R1": m + 1, "R5": m + 2}}
               for e, m in ((1, 30.0), (2, 35.0), (3, 33.0))]
    _cell(spec, "union", 1, 33.0, history)
    _cell(spec, "intersection", 1, 31.0)
    last = summarise(spec)
    assert last["rows"]["union"]["seeds"][1]["metrics"]["mAP"] == 33.0 and last["protocol"] == "last"
    best = dataclasses.replace(spec, rows=("union",), protocol="test-best")
    union = summarise(best)["rows"]["union"]["seeds"][1]["metrics"]
    assert (union["mAP"], union["epoch"]) == (35.0, 2)
    _, md = write_summary(best)
    assert "Protocol: TEST-SELECTED" in md.read_text()
    with pytest.raises(ValueError, match=r"intersection/seed_1 has no per-epoch test metrics .* train\.eval_every=1"):
        summarise(dataclasses.replace(best, rows=("union", "intersection")))


def test_the_validation_selected_protocol_reports_the_test_metrics_of_the_best_validation_epoch(tmp_path):
    spec = _spec(tmp_path, "table4", seeds=(1,), protocol="val-best")
    # validation mAP peaks at epoch 2, test mAP at epoch 3: the chosen epoch is 2, with its test metrics
    history = [{"epoch": e, "loss": 1.0, "val": {"mAP": v, "R1": v + 5}, "test": {"mAP": m, "R1": m + 1, "R5": m + 2}}
               for e, v, m in ((1, 40.0, 30.0), (2, 48.0, 31.0), (3, 45.0, 36.0))]
    _cell(spec, "union", 1, 36.0, history)
    _cell(spec, "intersection", 1, 31.0, [{"epoch": 1, "loss": 1.0, "test": {"mAP": 31.0, "R1": 41.0, "R5": 51.0}}])
    union = summarise(dataclasses.replace(spec, rows=("union",)))["rows"]["union"]["seeds"][1]["metrics"]
    assert union == {"mAP": 31.0, "R1": 32.0, "R5": 33.0, "epoch": 2}
    json_path, md = write_summary(dataclasses.replace(spec, rows=("union",)))
    assert "Protocol: VALIDATION-SELECTED: each cell's test metrics at its epoch with the best mAP on a validation " \
           "split of held-out training identities" in md.read_text()
    assert json.loads(json_path.read_text())["protocol"] == "val-best"
    with pytest.raises(ValueError) as info:  # a cell trained without train.val_ids
        summarise(spec)
    assert str(info.value) == (f"--protocol val-best: {spec.cell_dir('intersection', 1)} has no per-epoch validation "
                               "metrics in its history.jsonl; train the grid with train.val_ids=N "
                               "train.eval_every=1 to use it.")


def test_a_folder_of_another_grid_is_refused(tmp_path, capsys):
    spec = _spec(tmp_path, "table4", seeds=(1,))
    _cell(spec, "union", 1, 30.0)
    _cell(spec, "intersection", 1, 29.0)
    args = ["--config", spec.config, "--data-root", spec.data_root, "--out", str(spec.out), "--seeds", "1",
            "--summary-only"]
    assert ablation_main(args + ["--grid", "table4"]) == 0
    assert "| intersection | union (reference) | -1.00 [n/a, n/a] | -1.00 | no | -1.00 [n/a, n/a] | -1.1 |" in \
        capsys.readouterr().out
    assert ablation_main(args + ["--grid", "table5"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: grid folder {spec.out} holds the grid 'table4', not 'table5': use --grid table4 to resume "
                   "or summarise it, or another --out for table5.\n")
    # a folder of cells from before grids had names holds table3
    (spec.out / GRID_FILE).unlink()
    assert ablation_main(args + ["--grid", "table4"]) == 2
    assert "holds the grid 'table3', not 'table4'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_grid_trains_resumes_and_plots(tmp_path, capsys):
    """fig5a on a tiny benchmark: two k1 points, one seed, one epoch; the cells train with the row's k1, the
    folder records its grid, a second run trains nothing, and the plot is written from the real cells."""
    data = _tiny_benchmark(tmp_path)
    args = ["--grid", "fig5a", "--config", str(tmp_path / "tiny.yaml"), "--data-root", str(data),
            "--out", str(tmp_path / "grid"), "--seeds", "1", "--rows", "k1_8,k1_20"]
    assert ablation_main(args) == 0
    out = capsys.readouterr().out
    assert "ablation grid fig5a: 2 cells, 0 done, 2 to run" in out and "Fig. 5 (a)" in out
    for k in (8, 20):
        resolved = yaml.safe_load((tmp_path / "grid" / f"k1_{k}" / "seed_1" / "config.yaml").read_text())
        assert resolved["model"]["k1"] == k and resolved["model"]["selection"] == "union"
    assert json.loads((tmp_path / "grid" / GRID_FILE).read_text()) == {"grid": "fig5a"}
    assert (tmp_path / "grid" / "fig5a.png").read_bytes()[:4] == b"\x89PNG"
    assert ablation_main(args) == 0
    assert "2 cells, 2 done, 0 to run" in capsys.readouterr().out
