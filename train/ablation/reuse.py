"""``--reuse DIR``: take a finished cell from another grid folder instead of training it again.

The reference row of table4 (``union``), table5 (``non_sharing``), fig5a (``k1_<ref>``) and fig5b
(``beta_0.2``) trains with one resolved configuration, so its cells are the same runs in four grid
folders. Before a grid trains a cell, :func:`find_finished` looks through the cells of each ``--reuse``
folder (``DIR/<row>/seed_<s>/``, any row: the rows' names differ between grids) for one that is finished
(the grid's own test: ``metrics.json``, and ``offsets.json`` for a LAM row) and whose ``grid_cell.json``
matches the record this cell would be trained with: :func:`record.record_differences`, the comparison
that refuses a grid folder of another configuration, finds no difference (every resolved ``model.*`` and
``train.*`` field, the seed included, and the benchmark's digest). A cell that differs in anything, has
no record or is unfinished is never taken.

:func:`copy_cell` copies the cell's files (never links) into a hidden temporary sibling
(``.seed_<s>.reuse-*``), writes the record there with ``"reused_from"`` (the folder the cell was
trained in, kept along a chain of reuses) and renames it into place: a copy cut short is never a
finished cell, and the next run removes it. The summary lists the reused cells (``"reused"`` in
``ablation.json``, a line of ``ablation.md``).
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .record import GRID_FILE, RECORD_FILE, clear_cell, other_files, record_differences, write_record

REUSED_FROM = "reused_from"  # key of grid_cell.json: the folder a copied cell was trained in
_PARTIAL = ".{name}.reuse-"  # prefix of a copy under way, beside the cell it becomes


def reuse_folders(texts: Iterable[str]) -> tuple[Path, ...]:
    """The ``--reuse`` folders, each a grid folder (it holds ``grid.json``).

    Raises:
        ValueError: one line naming the first folder that is not one and what to give instead.
    """
    folders = []
    for text in texts:
        folder = Path(text)
        if not (folder / GRID_FILE).is_file():
            raise ValueError(f"--reuse {text}: not a grid folder (no {GRID_FILE}); give the --out folder of a "
                             "python -m train.ablation grid.")
        folders.append(folder)
    return tuple(dict.fromkeys(folders))


def find_finished(folders: Iterable[Path], record: dict[str, Any], finished: Callable[[Path], bool],
                  exclude: Path | None = None) -> Path | None:
    """The first cell of ``folders`` that is ``finished`` and was trained with ``record``; None if none is.

    ``exclude`` (the cell to be filled) is never its own source."""
    skip = Path(os.path.abspath(exclude)) if exclude is not None else None
    for folder in folders:
        for cell in sorted(folder.glob("*/seed_*")):
            if (cell.is_dir() and Path(os.path.abspath(cell)) != skip and finished(cell)
                    and record_differences(cell, record) is None):
                return cell
    return None


def reused_from(cell: Path) -> str | None:
    """Where ``cell`` was copied from (its record's ``"reused_from"``), or None for a cell trained in place."""
    try:
        saved = json.loads((cell / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    origin = saved.get(REUSED_FROM) if isinstance(saved, dict) else None
    return origin if isinstance(origin, str) else None


def copy_cell(source: Path, cell: Path, record: dict[str, Any]) -> list[str]:
    """Copy the finished cell ``source`` into ``cell`` with ``record`` and where it came from.

    Whatever ``cell`` held of a run (an unfinished run of the same record) is replaced once the copy is
    whole. Returns the names of the other files ``cell`` holds, which a copy never replaces: when there
    are any, nothing is changed."""
    others = other_files(cell) if cell.is_dir() else []
    if others:
        return others
    cell.parent.mkdir(parents=True, exist_ok=True)
    for stale in cell.parent.glob(_PARTIAL.format(name=cell.name) + "*"):  # a copy cut short before
        shutil.rmtree(stale, ignore_errors=True)
    tmp = cell.parent / f"{_PARTIAL.format(name=cell.name)}{os.getpid()}"
    try:
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("*.tmp", RECORD_FILE))
        write_record(tmp, {**record, REUSED_FROM: reused_from(source) or os.path.abspath(source)})
        if cell.is_dir():
            clear_cell(cell)
            cell.rmdir()
        os.rename(tmp, cell)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
    return []
