"""python -m train.ablation: the paired statistics on hand-made numbers, the summary of hand-made cells,
cells of another configuration refused, and tiny real grids that resume where they stopped, train again
with --overwrite and go on past a failing cell."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from train.ablation import GridSpec, paired_difference, summarise, t_quantile_975, write_summary
from train.ablation.__main__ import main as ablation_main
from train.ablation.grid import ROWS, cell_overrides, cell_state, run_grid
from train.ablation.record import RECORD_FILE, benchmark_digest, cell_record, record_differences, write_record
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


TINY_YAML = """
model: {preset: tiny, pretrained: null}
train: {dataset: rgbnt201, epochs: 1, batch_size: 8, num_instances: 2, base_lr: 1.0e-3, backbone_lr: 1.0e-3,
        warmup_epochs: 0, num_workers: 0, checkpoint_every: 1, eval_batch_size: 16}
"""


def _hand_made_spec(tmp_path: Path, rows: tuple[str, ...], seeds: tuple[int, ...]) -> GridSpec:
    """A grid of the tiny config over a stand-in benchmark (a synthetic.json only: nothing is trained)."""
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "synthetic.json").write_text('{"spec": {"seed": 0}}')
    return GridSpec(str(tmp_path / "tiny.yaml"), str(tmp_path / "data"), tmp_path / "grid", rows, seeds)


def _record(spec: GridSpec, row: str, seed: int) -> dict:
    return cell_record(spec.config, cell_overrides(spec, ROWS[row], seed), benchmark_digest(spec.data_root))


def _fake_cell(spec: GridSpec, row: str, seed: int, m: float, offsets: bool = False) -> Path:
    """A finished cell of ``spec`` (its record, hand-made metrics and offsets)."""
    cell = spec.cell_dir(row, seed)
    cell.mkdir(parents=True)
    write_record(cell, _record(spec, row, seed))
    (cell / "metrics.json").write_text(json.dumps({"mAP": m, "R1": m + 10, "R5": m + 20}))
    if offsets:
        fit = {"relative": {"r": 0.8, "slope": 0.5, "n": 10}}
        (cell / "offsets.json").write_text(json.dumps({s: {"nir": fit, "tir": fit} for s in ("trained", "untrained")}))
    return cell


def test_summary_of_hand_made_cells(tmp_path):
    spec = _hand_made_spec(tmp_path, ("baseline", "sim", "full"), (1, 2, 3))
    for seed, (b, s, f) in {1: (50, 55, 56), 2: (60, 64, 62), 3: (40, 46, 47)}.items():
        _fake_cell(spec, "baseline", seed, b)
        _fake_cell(spec, "sim", seed, s)
        if seed != 3:
            _fake_cell(spec, "full", seed, f, offsets=True)
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
    places = ["--data-root", str(tmp_path / "bench"), "--out", str(tmp_path / "grid")]
    assert ablation_main(["--config", "nope.yaml", *places]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert ablation_main(["--config", "train/configs/alignment.yaml", *places, "--rows", "baseline,bogus"]) == 2
    assert "unknown row" in capsys.readouterr().err
    for flag, value, message in (("--jobs", "text", "argument --jobs: expected a whole number, got 'text'"),
                                 ("--jobs", "9", "argument --jobs: must be from 1 to 8, got 9"),
                                 ("--threads", "0", "argument --threads: must be from 1 to 64, got 0")):
        with pytest.raises(SystemExit) as info:  # once: argparse's usage block and "invalid int value"
            ablation_main(["--config", "c.yaml", *places, flag, value])
        assert info.value.code == 2
        assert capsys.readouterr().err == f"error: {message} (see python -m train.ablation --help)\n"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cells_of_another_configuration_are_refused(tmp_path, capsys):
    """Once: a grid folder trained with other overrides, another --config or another benchmark was "done, 0 to
    run" and summarised as if it were this configuration's."""
    spec = _hand_made_spec(tmp_path, ("baseline", "sim"), (1,))
    for row, m in (("baseline", 50), ("sim", 55)):
        _fake_cell(spec, row, 1, m)
    assert summarise(spec)["rows"]["sim"]["stats"]["mAP"]["mean"] == 55  # its own configuration: summarised
    before = _snapshot(spec.out)
    args = ["--config", spec.config, "--data-root", spec.data_root, "--out", str(spec.out), "--seeds", "1",
            "--rows", "baseline,sim"]
    other_yaml = tmp_path / "other.yaml"
    other_yaml.write_text(TINY_YAML.replace("base_lr: 1.0e-3", "base_lr: 2.0e-3"))
    other_data = tmp_path / "other_data"
    other_data.mkdir()
    (other_data / "synthetic.json").write_text('{"spec": {"seed": 1}}')
    for changed, differs in ((["train.epochs=2"], "train.epochs: 1 -> 2"),
                             (["model.layers=3"], "model.layers: 2 -> 3"),
                             (["--config", str(other_yaml)], "train.base_lr: 0.001 -> 0.002"),
                             (["--data-root", str(other_data)], "the benchmark (--data-root)")):
        for extra in ([], ["--summary-only"]):  # training refuses before anything runs; so does the summary
            assert ablation_main(args + changed + extra) == 2
            out, err = capsys.readouterr()
            assert err.startswith(f"error: grid folder {spec.out}: 2 cell(s) were trained with another "
                                  "configuration than this command's (the cell's value -> this command's): "
                                  f"{differs} in baseline/seed_1, sim/seed_1. ") and \
                "--overwrite" in err and err.count("\n") == 1, err
            assert "to run" not in out and not (spec.out / "ablation.md").exists()
    assert _snapshot(spec.out) == before
    (spec.cell_dir("sim", 1) / RECORD_FILE).unlink()  # results whose configuration is unknown
    with pytest.raises(ValueError, match=rf"1 cell\(s\) .*: no {RECORD_FILE} \(.*\) in sim/seed_1\."):
        summarise(spec)
    with pytest.raises(ValueError, match="sim/seed_1"):
        run_grid(spec)


def test_a_cell_older_than_an_option_at_its_default_is_still_this_configuration(tmp_path):
    """Once: train.val_ids was added while table4 trained; table5 --reuse then found table4's reference cells
    "another configuration" (their records lack the key) and trained them again."""
    spec = _hand_made_spec(tmp_path, ("baseline",), (1,))
    _fake_cell(spec, "baseline", 1, 50)
    cell = spec.cell_dir("baseline", 1)
    record = json.loads((cell / RECORD_FILE).read_text())
    assert record["config"].pop("train.val_ids") == 0  # a record written before the option existed
    write_record(cell, record)
    assert record_differences(cell, _record(spec, "baseline", 1)) is None
    assert summarise(spec)["rows"]["baseline"]["stats"]["mAP"]["mean"] == 50
    overrides = cell_overrides(spec, ROWS["baseline"], 1) + ["train.val_ids=1", "train.eval_every=1"]
    later = cell_record(spec.config, overrides, benchmark_digest(spec.data_root))
    assert record_differences(cell, later) == ["train.eval_every: 0 -> 1", "train.val_ids: (absent) -> 1"]


def _history_epochs(cell: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (cell / "history.jsonl").read_text().splitlines()]


def _tiny_benchmark(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    generate(SyntheticSpec.preset("alignment", train_ids=4, test_ids=2, cameras=2, per_camera=2), data, progress=False)
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    return data


@pytest.mark.slow
def test_grid_resumes_where_it_stopped_and_overwrite_trains_again(tmp_path):
    data = _tiny_benchmark(tmp_path)
    spec = GridSpec(str(tmp_path / "tiny.yaml"), str(data), tmp_path / "grid", ("baseline", "full"), (1,))
    assert run_grid(spec) == []
    full, base = spec.cell_dir("full", 1), spec.cell_dir("baseline", 1)
    assert cell_state(full, ROWS["full"]) == cell_state(base, ROWS["baseline"]) == "done"
    assert json.loads((full / RECORD_FILE).read_text()) == _record(spec, "full", 1)
    offsets = json.loads((full / "offsets.json").read_text())
    assert offsets["trained"]["nir"]["relative"]["n"] == 8 and "untrained" in offsets
    # a grid of 2 epochs killed after epoch 1 of "full" (checkpoint kept) and inside epoch 1 of "baseline":
    # the cells' records say 2 epochs, as that grid would have written them
    spec2 = GridSpec(spec.config, spec.data_root, spec.out, spec.rows, spec.seeds, ("train.epochs=2",))
    for cell, row in ((full, "full"), (base, "baseline")):
        write_record(cell, _record(spec2, row, 1))
    for name in ("metrics.json", "offsets.json"):
        (full / name).unlink()
    for path in base.iterdir():
        if path.name not in ("history.jsonl", "config.yaml", "train.log", RECORD_FILE):
            path.unlink()
    assert cell_state(full, ROWS["full"]) == "resume" and cell_state(base, ROWS["baseline"]) == "fresh"
    assert run_grid(spec2) == []
    assert "resuming after epoch 1" in (full / "train.log").read_text()
    assert _history_epochs(full) == [1, 2] and _history_epochs(base) == [1, 2]
    assert (full / "offsets.json").is_file() and (full / "epoch_002.safetensors").is_file()
    # a finished grid trains nothing; one of another configuration is refused before anything runs
    stamp = (full / "metrics.json").stat().st_mtime_ns
    assert run_grid(spec2) == []
    with pytest.raises(ValueError, match=r"2 cell\(s\) .*: train\.epochs: 2 -> 3 in baseline/seed_1, full/seed_1\."):
        run_grid(GridSpec(spec.config, spec.data_root, spec.out, spec.rows, spec.seeds, ("train.epochs=3",)))
    assert (full / "metrics.json").stat().st_mtime_ns == stamp
    assert summarise(spec2)["missing"] == []
    # --overwrite: "baseline" of 1 epoch trained again from scratch; "full" (not in this grid) untouched
    spec1 = GridSpec(spec.config, spec.data_root, spec.out, ("baseline",), spec.seeds, overwrite=True)
    assert run_grid(spec1) == []
    assert _history_epochs(base) == [1] and not (base / "epoch_002.safetensors").exists()
    assert json.loads((base / RECORD_FILE).read_text()) == _record(spec1, "baseline", 1)
    assert (full / "metrics.json").stat().st_mtime_ns == stamp
    assert summarise(spec1)["rows"]["baseline"]["seeds"][1]["metrics"]["mAP"] >= 0
    with pytest.raises(ValueError, match=r"1 cell\(s\) .*: train\.epochs: 1 -> 2 in baseline/seed_1\."):
        summarise(spec2)  # never a table that mixes 1- and 2-epoch cells


@pytest.mark.slow
def test_a_failing_cell_is_one_line_and_the_others_go_on(tmp_path, capsys):
    """Once: a RuntimeError traceback that stopped the grid (and no summary of the cells that finished)."""
    data = _tiny_benchmark(tmp_path)
    spec = GridSpec(str(tmp_path / "tiny.yaml"), str(data), tmp_path / "grid", ("baseline", "sim"), (1,))
    broken = spec.cell_dir("baseline", 1)  # its checkpoint is damaged: resuming it fails
    write_record(broken, _record(spec, "baseline", 1))
    (broken / "epoch_001.safetensors").write_bytes(b"not a checkpoint")
    code = ablation_main(["--config", spec.config, "--data-root", spec.data_root, "--out", str(spec.out),
                          "--seeds", "1", "--rows", "baseline,sim"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    cause = f"cell baseline/seed_1 failed (exit 2): {broken / 'epoch_001.safetensors'} has no optimizer state"
    assert lines[0].startswith(f"WARNING: {cause}") and lines[0].endswith("; the other cells go on"), err
    assert lines[-1].startswith(f"error: 1 of 2 cells failed, the others are kept: {cause}") and \
        f"(see {broken / 'train.log'}). Fix the cause" in lines[-1], err
    assert "cell sim seed 1: done (fresh)" in out and (spec.cell_dir("sim", 1) / "metrics.json").is_file()
    assert "Unfinished cells: baseline/seed_1." in (spec.out / "ablation.md").read_text()
    assert (broken / "epoch_001.safetensors").read_bytes() == b"not a checkpoint"  # kept as it was
