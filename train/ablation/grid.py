"""The ablation grid: rows (module switches) x seeds, one ``python -m train`` run folder per cell.

A cell is done when its folder holds ``metrics.json`` (written by ``python -m train`` after the last
epoch) and, for a row with LAM, ``offsets.json``. A cell with a checkpoint continues with ``--resume``;
a cell with a history but no checkpoint (killed in its first epoch) starts again. So a killed grid,
started again with the same arguments, continues where it stopped and repeats no finished epoch.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from signal_core import build_model, load_checkpoint
from signal_core.data import load_dataset
from signal_core.utils.atomic import write_json

from ..checkpoints import find_checkpoint
from ..offsets import offset_tracking
from ..run_folder import CONFIG_FILE, HISTORY_FILE

log = logging.getLogger(__name__)

# The fixes of docs/alignment.md, named once: model fields and training fields.
FIX_MODEL = {"offset_channels": 2, "reference_points": "centred", "lam_detach": True,
             "gam_standardise": True, "gam_learn_tau": False}
FIX_TRAIN = {"lam_lr_factor": 3.0}
_OFF = {"use_sim": False, "use_gam": False, "use_lam": False}


@dataclass(frozen=True)
class Row:
    """One row of the table: a name (also its folder), a label and the overrides it trains with."""

    key: str
    label: str
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)

    @property
    def uses_lam(self) -> bool:
        return bool(self.model.get("use_lam", True))

    def overrides(self) -> list[str]:
        """``model.KEY=VALUE`` / ``train.KEY=VALUE`` arguments of ``python -m train``."""
        def text(v) -> str:
            return str(v).lower() if isinstance(v, bool) else str(v)
        return ([f"model.{k}={text(v)}" for k, v in self.model.items()]
                + [f"train.{k}={text(v)}" for k, v in self.train.items()])


ROWS = {row.key: row for row in (
    Row("baseline", "baseline", dict(_OFF)),
    Row("sim", "+ SIM", {**_OFF, "use_sim": True}),
    Row("sim_gam", "+ SIM + GAM", {**_OFF, "use_sim": True, "use_gam": True}),
    Row("full", "full (SIM + GAM + LAM)", {"use_sim": True, "use_gam": True, "use_lam": True}),
    Row("full_fix", "full, GAM / LAM fixed", {"use_sim": True, "use_gam": True, "use_lam": True, **FIX_MODEL},
        dict(FIX_TRAIN)),
    Row("full_matched", "full fixed, matched LAM offsets",
        {"use_sim": True, "use_gam": True, "use_lam": True, **FIX_MODEL, "lam_offsets": "matched"}, dict(FIX_TRAIN)),
)}
# (row, reference row): the paired differences reported, each "what the row adds"
COMPARISONS = (("sim", "baseline"), ("sim_gam", "sim"), ("full", "sim_gam"), ("full_fix", "sim_gam"),
               ("full_fix", "full"), ("full_matched", "full_fix"))


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

    def cell_dir(self, row: str, seed: int) -> Path:
        return self.out / row / f"seed_{seed}"


def cell_state(cell: Path, row: Row) -> str:
    """"done", "resume" (a checkpoint to continue from), "offsets" (trained, offsets missing) or "fresh"."""
    if (cell / "metrics.json").is_file():
        return "offsets" if row.uses_lam and not (cell / "offsets.json").is_file() else "done"
    if cell.is_dir() and any(p.name.startswith("epoch_") and p.suffix == ".safetensors" for p in cell.iterdir()):
        return "resume"
    return "fresh"


def train_command(spec: GridSpec, row: Row, seed: int, resume: bool) -> list[str]:
    cell = spec.cell_dir(row.key, seed)
    cmd = [sys.executable, "-m", "train", "--config", spec.config, "--data-root", spec.data_root, "--no-progress",
           "--device", "cpu"]
    if resume:
        cmd += ["--resume", str(cell)]
    return cmd + [*spec.overrides, *row.overrides(), f"train.seed={seed}", f"train.output_dir={cell}"]


def run_cell(spec: GridSpec, row: Row, seed: int) -> str:
    """Train (or continue) one cell, then measure its offsets; returns the state it started in."""
    cell = spec.cell_dir(row.key, seed)
    state = cell_state(cell, row)
    if state in ("fresh", "resume"):
        if state == "fresh" and cell.is_dir():  # killed in its first epoch: no checkpoint to continue from
            for name in (HISTORY_FILE, CONFIG_FILE):
                (cell / name).unlink(missing_ok=True)
        cell.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(spec.threads), "MKL_NUM_THREADS": str(spec.threads)}
        with open(cell / "train.log", "a") as logf:
            done = subprocess.run(train_command(spec, row, seed, state == "resume"), stdout=logf,
                                  stderr=subprocess.STDOUT, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"cell {row.key} seed {seed} failed (exit {done.returncode}); see {cell / 'train.log'}")
    if row.uses_lam and not (cell / "offsets.json").is_file():
        write_json(cell / "offsets.json", cell_offsets(spec, cell, seed))
    return state


def cell_offsets(spec: GridSpec, cell: Path, seed: int) -> dict:
    """Offset tracking of a cell's last checkpoint and of the same model at its initialisation."""
    torch.set_num_threads(spec.threads)
    dataset = load_dataset("rgbnt201", spec.data_root)
    trained = load_checkpoint(find_checkpoint(cell))
    torch.manual_seed(seed)  # python -m train seeds the same way before building the model
    untrained = build_model(trained.cfg.replace(pretrained=None))
    return {"trained": offset_tracking(trained, dataset.query, spec.data_root),
            "untrained": offset_tracking(untrained, dataset.query, spec.data_root)}


def run_grid(spec: GridSpec) -> None:
    """Every missing or unfinished cell, ``spec.jobs`` at a time (seed by seed, so that an interrupted grid
    leaves whole seeds)."""
    cells = [(ROWS[r], s) for s in spec.seeds for r in spec.rows]
    todo = [(row, s) for row, s in cells if cell_state(spec.cell_dir(row.key, s), row) != "done"]
    print(f"ablation grid: {len(cells)} cells, {len(cells) - len(todo)} done, {len(todo)} to run", flush=True)
    with ThreadPoolExecutor(max_workers=spec.jobs) as pool:
        futures = {pool.submit(run_cell, spec, row, s): (row, s) for row, s in todo}
        for future, (row, s) in futures.items():
            state = future.result()
            print(f"cell {row.key} seed {s}: done ({'resumed' if state == 'resume' else state})", flush=True)


def read_cell(cell: Path) -> dict | None:
    """A finished cell's metrics (and offsets), or None."""
    path = cell / "metrics.json"
    if not path.is_file():
        return None
    out = {"metrics": json.loads(path.read_text())}
    if (cell / "offsets.json").is_file():
        out["offsets"] = json.loads((cell / "offsets.json").read_text())
    history = cell / HISTORY_FILE
    if history.is_file():
        lines = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
        last = lines[-1] if lines else {}
        out["final_losses"] = {k: v for k, v in last.items() if isinstance(v, float) and k != "lr"}
    return out
