"""python -m train.ablation --reuse DIR: a cell finished in another grid folder with the same record (resolved
config, seed, benchmark digest) is copied instead of trained, and says where it came from; a cell of another
record or an unfinished one is never taken; a copy cut short never looks finished; the refusals. The training
step (``python -m train``) is replaced by a stand-in that writes a finished run, so nothing here trains."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

import train.ablation.grid as grid_module
import train.ablation.reuse as reuse_module
from train.ablation import summarise, write_summary
from train.ablation.__main__ import main as ablation_main
from train.ablation.grid import cell_state, expected_records, run_grid
from train.ablation.record import GRID_FILE, RECORD_FILE, write_grid_name, write_record
from train.ablation.reuse import REUSED_FROM

from .test_ablation_grids import _spec


@pytest.fixture
def trainer(monkeypatch):
    """Stands in for ``python -m train``: notes each cell it is asked to train (``"<grid folder>/<row>/seed_<s>"``)
    and writes a finished run there (checkpoint, history, tensorboard file, metrics, offsets)."""
    calls = []

    def fake_run(cmd, **kwargs):
        values = dict(a.split("=", 1) for a in cmd if a.startswith("train.") and "=" in a)
        cell, seed = Path(values["train.output_dir"]), int(values["train.seed"])
        calls.append("/".join(cell.parts[-3:]))
        (cell / "tensorboard").mkdir(parents=True, exist_ok=True)
        (cell / "tensorboard" / "events.out").write_bytes(b"events of " + str(cell).encode())
        (cell / "epoch_001.safetensors").write_bytes(os.urandom(64))
        (cell / "history.jsonl").write_text(json.dumps({"epoch": 1, "loss": 1.5}) + "\n")
        (cell / "metrics.json").write_text(json.dumps({"epoch": 1, "mAP": 40.0 + seed, "R1": 50.0, "R5": 60.0}))
        fit = {"relative": {"r": 0.5, "slope": 0.25, "n": 8}}
        (cell / "offsets.json").write_text(json.dumps({s: {"nir": fit, "tir": fit} for s in ("trained", "untrained")}))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(grid_module.subprocess, "run", fake_run)
    return calls


def _files(cell: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cell)): p.read_bytes() for p in sorted(cell.rglob("*")) if p.is_file()}


def _no_links_or_partial_copies(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.is_symlink()]
    assert not [p for p in folder.rglob(".seed_*")]


def test_a_finished_reference_cell_is_copied_not_trained(tmp_path, trainer, capsys):
    table4 = _spec(tmp_path, "table4", seeds=(1,), out=tmp_path / "table4")
    assert run_grid(table4) == [] and trainer == ["table4/union/seed_1", "table4/intersection/seed_1"]
    source = table4.cell_dir("union", 1)
    capsys.readouterr()
    trainer.clear()
    # table5's reference row is table4's: seed 1 is copied, seed 2 (another record: the seed) and the other row train
    table5 = _spec(tmp_path, "table5", seeds=(1, 2), out=tmp_path / "table5", reuse=(table4.out,))
    assert run_grid(table5) == []
    assert trainer == ["table5/sharing/seed_1", "table5/non_sharing/seed_2", "table5/sharing/seed_2"]
    out = capsys.readouterr().out
    assert f"cell non_sharing seed 1: reused from {source} (the same record; not trained)\n" in out
    assert "ablation grid table5: 4 cells, 1 done (1 copied by --reuse), 3 to run\n" in out and out.count("reused") == 1
    copy = table5.cell_dir("non_sharing", 1)
    assert cell_state(copy, table5.grid.rows["non_sharing"]) == "done"
    assert {k: v for k, v in _files(copy).items() if k != RECORD_FILE} == \
        {k: v for k, v in _files(source).items() if k != RECORD_FILE}
    record = json.loads((copy / RECORD_FILE).read_text())
    assert record == {**expected_records(table5)["non_sharing", 1], REUSED_FROM: os.path.abspath(source)}
    assert json.loads((source / RECORD_FILE).read_text()) == expected_records(table4)["union", 1]  # left as it was
    _no_links_or_partial_copies(table5.out)
    summary = summarise(table5)
    assert summary["reused"] == {"non_sharing/seed_1": os.path.abspath(source)}
    assert summary["rows"]["non_sharing"]["seeds"][1]["metrics"]["mAP"] == 41.0
    json_path, md_path = write_summary(table5)
    assert json.loads(json_path.read_text())["reused"] == summary["reused"]
    assert f"by --reuse from the grid folder that trained them (the same record: resolved config, seed and " \
           f"benchmark): non_sharing/seed_1 from {os.path.abspath(source)}." in md_path.read_text()
    # a chain: fig5b's beta = 0.2 copied from table5's copy names the folder that trained it; run again, it is done
    trainer.clear()
    fig5b = _spec(tmp_path, "fig5b", seeds=(1, 2), out=tmp_path / "fig5b", rows=("beta_0.2",), reuse=(table5.out,))
    assert run_grid(fig5b) == [] and trainer == []
    assert summarise(fig5b)["reused"] == {f"beta_0.2/seed_{s}": os.path.abspath(table4.cell_dir("union", 1))
                                          if s == 1 else os.path.abspath(table5.cell_dir("non_sharing", 2))
                                          for s in (1, 2)}
    assert run_grid(fig5b) == [] and trainer == [] and "2 cells, 2 done, 0 to run" in capsys.readouterr().out


def test_a_cell_of_another_record_is_never_taken(tmp_path, trainer, capsys):
    other_epochs = _spec(tmp_path, "table4", seeds=(1,), out=tmp_path / "epochs2", overrides=("train.epochs=2",))
    other_data = tmp_path / "other_data"
    other_data.mkdir()
    (other_data / "synthetic.json").write_text('{"spec": {"seed": 1}}')
    other_bench = _spec(tmp_path, "table4", seeds=(1,), out=tmp_path / "bench2", data_root=str(other_data))
    for spec in (other_epochs, other_bench):
        assert run_grid(dataclasses.replace(spec, rows=("union",))) == []
    trainer.clear()
    table5 = _spec(tmp_path, "table5", seeds=(1,), out=tmp_path / "table5", reuse=(other_epochs.out, other_bench.out))
    assert run_grid(table5) == [] and trainer == ["table5/non_sharing/seed_1", "table5/sharing/seed_1"]
    assert "reused" not in capsys.readouterr().out and summarise(table5)["reused"] == {}
    assert REUSED_FROM not in json.loads((table5.cell_dir("non_sharing", 1) / RECORD_FILE).read_text())


def test_an_unfinished_cell_is_never_taken_and_a_cut_copy_never_looks_finished(tmp_path, trainer, monkeypatch,
                                                                                caplog):
    table4 = _spec(tmp_path, "table4", seeds=(1, 2, 3), out=tmp_path / "table4", rows=("union",))
    assert run_grid(table4) == []
    (table4.cell_dir("union", 1) / "metrics.json").unlink()  # killed after its checkpoint
    (table4.cell_dir("union", 2) / "offsets.json").unlink()  # a LAM cell whose offsets were not measured yet
    trainer.clear()
    table5 = _spec(tmp_path, "table5", seeds=(1, 2, 3), out=tmp_path / "table5", rows=("non_sharing",),
                   reuse=(table4.out,))
    # seed 3: a copy killed before (its hidden folder holds a whole run) is not a cell, and is removed
    stale = table5.out / "non_sharing" / ".seed_3.reuse-999"
    stale.mkdir(parents=True)
    (stale / "metrics.json").write_text("{}")
    # the copy fails after the files were copied (a full disk as its record is written): nothing is left
    def full_disk(cell, record):
        raise OSError(28, "No space left on device", str(cell / RECORD_FILE))

    monkeypatch.setattr(reuse_module, "write_record", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_grid(dataclasses.replace(table5, seeds=(3,)))
    assert not table5.cell_dir("non_sharing", 3).exists() and not stale.exists()
    _no_links_or_partial_copies(table5.out)
    monkeypatch.setattr(reuse_module, "write_record", write_record)
    # a folder holding a file of its own is not replaced by a copy: it trains, with a warning
    table5.cell_dir("non_sharing", 3).mkdir()
    (table5.cell_dir("non_sharing", 3) / "notes.txt").write_text("mine")
    assert run_grid(table5) == []
    assert trainer == ["table5/non_sharing/seed_1", "table5/non_sharing/seed_2", "table5/non_sharing/seed_3"]
    assert "cell non_sharing/seed_3: not reused from" in caplog.text and "(notes.txt); it trains" in caplog.text
    assert (table5.cell_dir("non_sharing", 3) / "notes.txt").read_text() == "mine"
    assert summarise(table5)["reused"] == {}


def test_a_reused_copy_replaces_an_unfinished_run_of_the_same_record(tmp_path, trainer):
    table4 = _spec(tmp_path, "table4", seeds=(1,), out=tmp_path / "table4", rows=("union",))
    assert run_grid(table4) == []
    table5 = _spec(tmp_path, "table5", seeds=(1,), out=tmp_path / "table5", rows=("non_sharing",))
    write_grid_name(table5.out, "table5")
    partial = table5.cell_dir("non_sharing", 1)  # killed after its first checkpoint, before --reuse was given
    write_record(partial, expected_records(table5)["non_sharing", 1])
    (partial / "epoch_001.safetensors").write_bytes(b"half a run")
    trainer.clear()
    assert run_grid(dataclasses.replace(table5, reuse=(table4.out,))) == [] and trainer == []
    assert (partial / "epoch_001.safetensors").read_bytes() == \
        (table4.cell_dir("union", 1) / "epoch_001.safetensors").read_bytes()
    assert summarise(table5)["reused"] == {"non_sharing/seed_1": os.path.abspath(table4.cell_dir("union", 1))}


def test_the_refusals_are_one_line(tmp_path, trainer, capsys):
    table4 = _spec(tmp_path, "table4", seeds=(1,), out=tmp_path / "table4", rows=("union",))
    assert run_grid(table4) == []
    trainer.clear()
    args = ["--grid", "table5", "--config", table4.config, "--data-root", table4.data_root, "--seeds", "1"]
    not_grid = tmp_path / "plain"
    not_grid.mkdir()
    cases = (
        (["--out", str(tmp_path / "t5"), "--reuse", str(table4.out), "--reuse", str(not_grid)],
         f"error: --reuse {not_grid}: not a grid folder (no {GRID_FILE}); give the --out folder of a python -m "
         "train.ablation grid.\n"),
        (["--out", str(tmp_path / "t5"), "--reuse", str(tmp_path / "missing")],
         f"error: --reuse {tmp_path / 'missing'}: not a grid folder (no {GRID_FILE}); give the --out folder of a "
         "python -m train.ablation grid.\n"),
        (["--out", str(table4.out), "--reuse", str(tmp_path / "t5"), "--reuse", str(table4.out)],
         f"error: argument --out: '{table4.out}' is also --reuse, which this command reads: choose another path "
         "(see python -m train.ablation --help)\n"),
        (["--out", str(table4.out / "t5"), "--reuse", str(table4.out)],
         f"error: argument --out: '{table4.out / 't5'}' lies inside --reuse '{table4.out}', which this command "
         "reads: write it elsewhere (see python -m train.ablation --help)\n"),
    )
    before = _files(tmp_path)
    for extra, message in cases:
        try:
            code = ablation_main(args + extra)
        except SystemExit as exc:  # argparse's refusal of a flag
            code = exc.code
        assert code == 2 and capsys.readouterr().err == message
    assert trainer == [] and _files(tmp_path) == before and not (tmp_path / "t5").exists()
