"""What a grid cell was trained with, so that a grid folder never mixes two configurations.

Before a cell trains, the grid writes ``grid_cell.json`` into its folder (atomically): the cell's
resolved configuration (every ``model.*`` and ``train.*`` field of ``--config`` with the grid's and
the row's overrides and the seed, as ``python -m train`` resolves them, less ``train.output_dir``)
and the SHA-256 of the benchmark's ``synthetic.json``. A grid started again, or summarised, compares
every cell that holds anything with what it would train now: a cell trained with another
``--config``, other overrides or another ``--data-root`` (or one with results but no record) is a
conflict, refused in one line naming the cell and the differing keys, or cleared and trained again
with ``--overwrite``. So a table never mixes cells of two configurations. A cell copied from another
grid folder by ``--reuse`` (reuse.py) holds the same record plus ``"reused_from"``, where it was trained.
"""
from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

from signal_core import SignalConfig
from signal_core.utils.atomic import write_json
from signal_core.utils.hashing import sha256_file

from ..config import TrainConfig, config_differences, load_config, resolved_config
from ..run_folder import CONFIG_FILE, HISTORY_FILE, METRICS_FILE

RECORD_FILE = "grid_cell.json"
GRID_FILE = "grid.json"  # in the grid folder: which named grid (grids.py) it holds
OFFSETS_FILE = "offsets.json"
LOG_FILE = "train.log"
# what a cell folder can hold: the grid's files and python -m train's (removed by --overwrite, nothing else)
CELL_FILES = (RECORD_FILE, CONFIG_FILE, HISTORY_FILE, METRICS_FILE, OFFSETS_FILE, LOG_FILE)
CELL_PATTERNS = ("epoch_*.safetensors", "epoch_*.state.pt", "*.tmp", ".*.tmp")
CELL_FOLDERS = ("tensorboard",)
_NOT_RECORDED = ("train.output_dir",)  # where the cell is, not what it trains with


def benchmark_digest(data_root: str | Path) -> str:
    """The SHA-256 of a generated benchmark's ``synthetic.json`` (its spec and every frame's shifts)."""
    return sha256_file(Path(data_root) / "synthetic.json")


def cell_record(config: str, overrides: list[str], benchmark_sha256: str) -> dict[str, Any]:
    """The record of a cell trained with ``python -m train --config config overrides`` on the benchmark
    of that digest.

    Raises:
        ValueError: the config or an override is invalid (the message of :func:`train.config.load_config`).
    """
    return {"config": _flat_config(*load_config(config, overrides)), "benchmark_sha256": benchmark_sha256}


def _flat_config(model_cfg: SignalConfig, train_cfg: TrainConfig) -> dict[str, Any]:
    """``{"model.k1": ..., "train.epochs": ...}`` as a record reads it back from JSON (tuples -> lists)."""
    resolved = resolved_config(model_cfg, train_cfg)
    flat = {f"{section}.{key}": value for section, fields in resolved.items() for key, value in fields.items()
            if f"{section}.{key}" not in _NOT_RECORDED}
    return json.loads(json.dumps(flat))


def write_record(cell: Path, record: dict[str, Any]) -> Path:
    """Write ``grid_cell.json`` into ``cell`` (created if needed), atomically."""
    return write_json(cell / RECORD_FILE, record, indent=1, sort_keys=True)


def holds_a_run(cell: Path) -> bool:
    """Whether ``cell`` holds anything a training run or the grid wrote."""
    if not cell.is_dir():
        return False
    return (any((cell / name).exists() for name in CELL_FILES + CELL_FOLDERS)
            or any(next(cell.glob(p), None) for p in CELL_PATTERNS))


def record_differences(cell: Path, expected: dict[str, Any]) -> list[str] | None:
    """None when ``cell`` holds nothing or was trained with ``expected``; otherwise what differs
    (``"train.epochs: 1 -> 2"``, ``"the benchmark (--data-root)"``, or that there is no record)."""
    if not holds_a_run(cell):
        return None
    path = cell / RECORD_FILE
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        return [f"no {RECORD_FILE} (what it was trained with is unknown)"]
    except (OSError, ValueError):
        return [f"an unreadable {RECORD_FILE}"]
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        return [f"an unreadable {RECORD_FILE}"]
    changed = config_differences(_with_later_defaults(saved["config"], expected["config"]), expected["config"])
    if saved.get("benchmark_sha256") != expected["benchmark_sha256"]:
        changed.append("the benchmark (--data-root)")
    return changed or None


def _with_later_defaults(saved: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """``saved`` plus each option it lacks that ``expected`` holds at the option's default: an option added to
    the project after the cell trained, whose default is the behaviour the cell was trained with (a new option
    defaults to what the code did before it existed), so an old cell still resumes or is reused."""
    defaults = option_defaults()
    return {**{k: v for k, v in expected.items() if k not in saved and k in defaults and defaults[k] == v}, **saved}


@cache
def option_defaults() -> dict[str, Any]:
    """Every ``model.*`` and ``train.*`` option's default, flattened as a record holds it."""
    return _flat_config(SignalConfig(), TrainConfig())


def conflict_message(out: Path, conflicts: dict[str, list[str]]) -> str:
    """One line: which cells of grid folder ``out`` were trained otherwise, how (grouped by what differs:
    "train.epochs: 1 -> 2 in baseline/seed_1, sim/seed_1"), and what to do."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, diff in conflicts.items():
        groups.setdefault(tuple(diff), []).append(name)
    parts = []
    for diff, names in list(groups.items())[:3]:
        what = "; ".join(diff[:4]) + ("; ..." if len(diff) > 4 else "")
        parts.append(f"{what} in {', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''}")
    more = f" (and {len(groups) - 3} other differences)" if len(groups) > 3 else ""
    return (f"grid folder {out}: {len(conflicts)} cell(s) were trained with another configuration than this "
            f"command's (the cell's value -> this command's): {' | '.join(parts)}{more}. Use the same --config, "
            "overrides and --data-root, another --out, or --overwrite to train those cells again.")


def recorded_grid(out: Path) -> str | None:
    """The named grid a grid folder holds: its ``grid.json``, or ``"table3"`` for a folder of cells written
    before grids had names (cells but no ``grid.json``), or None for an empty or new folder."""
    try:
        saved = json.loads((out / GRID_FILE).read_text())
    except FileNotFoundError:
        has_cells = out.is_dir() and any(holds_a_run(cell) for cell in out.glob("*/seed_*"))
        return "table3" if has_cells else None
    except (OSError, ValueError):
        raise ValueError(f"grid folder {out}: an unreadable {GRID_FILE}; use another --out.") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("grid"), str):
        raise ValueError(f"grid folder {out}: an unreadable {GRID_FILE}; use another --out.")
    return saved["grid"]


def check_grid_name(out: Path, grid: str) -> None:
    """Raise ValueError (one line) when grid folder ``out`` holds another named grid than ``grid``."""
    held = recorded_grid(out)
    if held is not None and held != grid:
        raise ValueError(f"grid folder {out} holds the grid {held!r}, not {grid!r}: use --grid {held} to resume "
                         f"or summarise it, or another --out for {grid}.")


def write_grid_name(out: Path, grid: str) -> Path:
    """Record in ``out`` (created) which named grid it holds."""
    return write_json(out / GRID_FILE, {"grid": grid}, indent=1)


def other_files(cell: Path) -> list[str]:
    """The names in ``cell`` that neither the grid nor ``python -m train`` wrote (what :func:`clear_cell` keeps)."""
    def written(path: Path) -> bool:
        if path.is_dir():
            return path.name in CELL_FOLDERS
        return path.name in CELL_FILES or any(path.match(p) for p in CELL_PATTERNS)
    return sorted(p.name for p in cell.iterdir() if not written(p))


def clear_cell(cell: Path) -> None:
    """Remove what the grid and ``python -m train`` wrote into ``cell`` (any other file is kept)."""
    for name in CELL_FILES:
        (cell / name).unlink(missing_ok=True)
    for pattern in CELL_PATTERNS:
        for path in cell.glob(pattern):
            path.unlink(missing_ok=True)
    for name in CELL_FOLDERS:
        if (cell / name).is_dir():
            shutil.rmtree(cell / name)
