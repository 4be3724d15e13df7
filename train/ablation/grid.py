"""The ablation grid: rows (module switches) x seeds, one ``python -m train`` run folder per cell.

A cell is done when its folder holds ``metrics.json`` (written by ``python -m train`` after the last
epoch) and, for a row with LAM, ``offsets.json``. A cell with a checkpoint continues with ``--resume``;
a cell with a history but no checkpoint (killed in its first epoch) starts again. So a killed grid,
started again with the same arguments, continues where it stopped and repeats no finished epoch.
Each cell records what it trains with (record.py): a cell of another configuration is refused before
anything trains (or, with ``overwrite``, trained again). A cell whose training fails is reported in
one line and the other cells go on; :func:`run_grid` returns the failures. With ``reuse`` (``--reuse``), a
cell finished in another grid folder with the same record is copied instead of trained (reuse.py).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from signal_core import build_model, load_checkpoint
from signal_core.data import load_dataset
from signal_core.utils.atomic import write_json

from ..checkpoints import find_checkpoint
from ..offsets import offset_tracking
from ..run_folder import CONFIG_FILE, HISTORY_FILE
from .grids import COMPARISONS, FIX_MODEL, FIX_TRAIN, ROWS, TABLE3, Grid, Row
from .record import (
    LOG_FILE,
    OFFSETS_FILE,
    benchmark_digest,
    cell_record,
    check_grid_name,
    clear_cell,
    conflict_message,
    record_differences,
    write_grid_name,
    write_record,
)
from .reuse import copy_cell, find_finished

__all__ = ["COMPARISONS", "FIX_MODEL", "FIX_TRAIN", "ROWS", "CellFailed", "GridSpec", "PROTOCOLS", "Row", "read_cell",
           "run_grid"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class GridSpec:
    """Everything a grid run needs."""

    config: str  # the training YAML (python -m train --config)
    data_root: str  # a generated benchmark (synthetic.json gives the true shifts)
    out: Path  # the grid folder: <row>/seed_<s>/ run folders, ablation.json, ablation.md
    rows: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: tuple[str, ...] = ()  # extra overrides for every cell
    threads: int = 1  # torch / OpenMP threads per training process
    jobs: int = 1  # cells trained at once
    overwrite: bool = False  # train again the cells trained with another configuration (else refuse them)
    grid: Grid = TABLE3  # the named grid (grids.py) whose rows these are
    protocol: str = "last"  # the epoch a cell reports (summary.PROTOCOLS)
    reuse: tuple[Path, ...] = ()  # grid folders whose finished cells of the same record are copied (reuse.py)

    def cell_dir(self, row: str, seed: int) -> Path:
        return self.out / row / f"seed_{seed}"

    def cells(self) -> list[tuple[Row, int]]:
        """(row, seed) of every cell, seed by seed."""
        return [(self.grid.rows[r], s) for s in self.seeds for r in self.rows]


class CellFailed(Exception):
    """A cell's ``python -m train`` ended with an error; the message names the cell and the cause."""


def cell_state(cell: Path, row: Row) -> str:
    """"done", "resume" (a checkpoint to continue from), "offsets" (trained, offsets missing) or "fresh"."""
    if (cell / "metrics.json").is_file():
        return "offsets" if row.uses_lam and not (cell / "offsets.json").is_file() else "done"
    if cell.is_dir() and any(p.name.startswith("epoch_") and p.suffix == ".safetensors" for p in cell.iterdir()):
        return "resume"
    return "fresh"


def cell_overrides(spec: GridSpec, row: Row, seed: int) -> list[str]:
    """The overrides a cell trains with (all but its ``train.output_dir``)."""
    return [*spec.overrides, *row.overrides(), f"train.seed={seed}"]


def train_command(spec: GridSpec, row: Row, seed: int, resume: bool) -> list[str]:
    cell = spec.cell_dir(row.key, seed)
    cmd = [sys.executable, "-m", "train", "--config", spec.config, "--data-root", spec.data_root, "--no-progress",
           "--device", "cpu"]
    if resume:
        cmd += ["--resume", str(cell)]
    return cmd + [*cell_overrides(spec, row, seed), f"train.output_dir={cell}"]


def expected_records(spec: GridSpec) -> dict[tuple[str, int], dict]:
    """(row, seed) -> the record of what that cell trains with (raises ValueError for a bad config)."""
    digest = benchmark_digest(spec.data_root)
    return {(row.key, s): cell_record(spec.config, cell_overrides(spec, row, s), digest) for row, s in spec.cells()}


def grid_conflicts(spec: GridSpec, records: dict[tuple[str, int], dict]) -> dict[str, list[str]]:
    """``"row/seed_s"`` -> what differs, for every cell trained with another configuration."""
    found = {}
    for (key, s), record in records.items():
        diff = record_differences(spec.cell_dir(key, s), record)
        if diff:
            found[f"{key}/seed_{s}"] = diff
    return found


def check_grid(spec: GridSpec) -> dict[tuple[str, int], dict]:
    """The cells' records; raises ValueError (one line) when a cell was trained otherwise."""
    check_grid_name(spec.out, spec.grid.name)
    records = expected_records(spec)
    conflicts = grid_conflicts(spec, records)
    if conflicts:
        raise ValueError(conflict_message(spec.out, conflicts))
    return records


def run_cell(spec: GridSpec, row: Row, seed: int, record: dict) -> str:
    """Train (or continue) one cell, then measure its offsets; returns the state it started in.

    Raises:
        CellFailed: its ``python -m train`` failed (the cause: the last line of its train.log).
    """
    cell = spec.cell_dir(row.key, seed)
    state = cell_state(cell, row)
    if state in ("fresh", "resume"):
        if state == "fresh" and cell.is_dir():  # killed in its first epoch: no checkpoint to continue from
            for name in (HISTORY_FILE, CONFIG_FILE):
                (cell / name).unlink(missing_ok=True)
        write_record(cell, record)  # before training: a killed cell is known too
        env = {**os.environ, "OMP_NUM_THREADS": str(spec.threads), "MKL_NUM_THREADS": str(spec.threads)}
        with open(cell / LOG_FILE, "a") as logf:
            done = subprocess.run(train_command(spec, row, seed, state == "resume"), stdout=logf,
                                  stderr=subprocess.STDOUT, env=env)
        if done.returncode != 0:
            raise CellFailed(f"cell {row.key}/seed_{seed} failed (exit {done.returncode}): "
                             f"{_last_line(cell / LOG_FILE)} (see {cell / LOG_FILE})")
    if row.uses_lam and not (cell / OFFSETS_FILE).is_file():
        write_json(cell / OFFSETS_FILE, cell_offsets(spec, cell, seed))
    return state


def _last_line(log_file: Path, tail: int = 4096) -> str:
    """The last non-empty line of a log (what ``python -m train`` said last: its one-line error, without
    its ``error:``)."""
    with open(log_file, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - tail))
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].removeprefix("error: ")[:300] if lines else "it printed nothing"


def cell_offsets(spec: GridSpec, cell: Path, seed: int) -> dict:
    """Offset tracking of a cell's last checkpoint and of the same model at its initialisation."""
    torch.set_num_threads(spec.threads)
    dataset = load_dataset("rgbnt201", spec.data_root)
    trained = load_checkpoint(find_checkpoint(cell))
    torch.manual_seed(seed)  # python -m train seeds the same way before building the model
    untrained = build_model(trained.cfg.replace(pretrained=None))
    return {"trained": offset_tracking(trained, dataset.query, spec.data_root),
            "untrained": offset_tracking(untrained, dataset.query, spec.data_root)}


def run_grid(spec: GridSpec) -> list[str]:
    """Every missing or unfinished cell, ``spec.jobs`` at a time (seed by seed, so that an interrupted grid
    leaves whole seeds). A cell trained with another configuration stops the grid before anything trains
    (ValueError), or with ``spec.overwrite`` is cleared and trained again. A failing cell is reported and
    the others go on.

    Returns:
        One line per failed cell (empty when every cell finished).
    """
    check_grid_name(spec.out, spec.grid.name)
    records = expected_records(spec)
    conflicts = grid_conflicts(spec, records)
    if conflicts and not spec.overwrite:
        raise ValueError(conflict_message(spec.out, conflicts))
    write_grid_name(spec.out, spec.grid.name)
    for name in conflicts:
        clear_cell(spec.out / name)
    cells = spec.cells()
    reused = reuse_cells(spec, records, cells) if spec.reuse else 0
    todo = [(row, s) for row, s in cells if cell_state(spec.cell_dir(row.key, s), row) != "done"]
    again = f" ({len(conflicts)} of another configuration cleared)" if conflicts else ""
    copied = f" ({reused} copied by --reuse)" if reused else ""
    print(f"ablation grid {spec.grid.name}: {len(cells)} cells, {len(cells) - len(todo)} done{copied}, "
          f"{len(todo)} to run{again}", flush=True)
    failures = []
    with ThreadPoolExecutor(max_workers=spec.jobs) as pool:
        futures = {pool.submit(run_cell, spec, row, s, records[row.key, s]): (row, s) for row, s in todo}
        for future, (row, s) in futures.items():
            try:
                state = future.result()
            except CellFailed as exc:
                failures.append(str(exc))
                log.warning("%s; the other cells go on", exc)
                continue
            print(f"cell {row.key} seed {s}: done ({'resumed' if state == 'resume' else state})", flush=True)
    return failures


def reuse_cells(spec: GridSpec, records: dict[tuple[str, int], dict], cells: list[tuple[Row, int]]) -> int:
    """Copy into each unfinished cell a finished cell of ``spec.reuse`` with the same record (reuse.py), one
    line each; returns how many were copied."""
    count = 0
    for row, s in cells:
        cell = spec.cell_dir(row.key, s)
        if cell_state(cell, row) == "done":
            continue
        source = find_finished(spec.reuse, records[row.key, s], lambda c, r=row: cell_state(c, r) == "done", cell)
        if source is None:
            continue
        others = copy_cell(source, cell, records[row.key, s])
        if others:
            log.warning("cell %s/seed_%d: not reused from %s, its folder holds other files (%s); it trains",
                        row.key, s, source, ", ".join(others[:3]))
            continue
        count += 1
        print(f"cell {row.key} seed {s}: reused from {source} (the same record; not trained)", flush=True)
    return count


# the epoch a cell reports: key -> what the tables say
PROTOCOLS = {
    "last": "last epoch (the model each run ends with; no epoch is chosen on the test split)",
    "test-best": "TEST-SELECTED: each cell's epoch with the best test mAP (the authors' protocol; optimistic, "
                 "the test split chose the epoch)",
    "val-best": "VALIDATION-SELECTED: each cell's test metrics at its epoch with the best mAP on a validation split "
                "of held-out training identities (train.val_ids; honest, the test split chose nothing; the models "
                "train on fewer identities)",
}
# protocol -> (the history key whose mAP chooses the epoch, the training overrides that log it)
_CHOOSERS = {"test-best": ("test", "train.eval_every=1"), "val-best": ("val", "train.val_ids=N train.eval_every=1")}


def read_cell(cell: Path, protocol: str = "last") -> dict | None:
    """A finished cell's metrics under ``protocol`` (and offsets, last-epoch losses), or None.

    Raises:
        ValueError: ``protocol`` chooses an epoch (test-best, val-best) and the cell's history holds no
            per-epoch metrics to choose by.
    """
    path = cell / "metrics.json"
    if not path.is_file():
        return None
    out = {"metrics": json.loads(path.read_text())}
    if (cell / "offsets.json").is_file():
        out["offsets"] = json.loads((cell / "offsets.json").read_text())
    history = cell / HISTORY_FILE
    lines = ([json.loads(line) for line in history.read_text().splitlines() if line.strip()]
             if history.is_file() else [])
    if lines:
        out["final_losses"] = {k: v for k, v in lines[-1].items() if isinstance(v, float) and k != "lr"}
    if protocol in _CHOOSERS:
        out["metrics"] = chosen_epoch_metrics(cell, lines, protocol)
    return out


def chosen_epoch_metrics(cell: Path, lines: list[dict], protocol: str) -> dict:
    """The test metrics (and ``epoch``) of the history line with the best mAP under ``protocol``'s key (the
    first such epoch on a tie); ValueError when no line holds both."""
    key, overrides = _CHOOSERS[protocol]
    scored = [line for line in lines if isinstance(line.get(key), dict) and isinstance(line.get("test"), dict)]
    if not scored:
        split = "test" if key == "test" else "validation"
        raise ValueError(f"--protocol {protocol}: {cell} has no per-epoch {split} metrics in its {HISTORY_FILE}; "
                         f"train the grid with {overrides} to use it.")
    best = max(scored, key=lambda line: line[key]["mAP"])
    return {**best["test"], "epoch": best["epoch"]}
