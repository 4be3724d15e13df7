"""The run folder (``train.output_dir``): its resolved config, its history, and repair on resume.

``config.yaml`` records the full configuration a run started with; ``history.jsonl`` one line per
finished epoch; ``val_split.json`` the held-out validation identities (``train.val_ids``). A crash
after an epoch's history line but before its checkpoint leaves a line the resumed run would repeat,
and an interrupted atomic write leaves a ``*.tmp`` file: resuming cuts the history back to the
checkpoint's epoch and removes the temporaries.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from signal_core.utils.atomic import atomic_write, write_json

log = logging.getLogger(__name__)
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.jsonl"
METRICS_FILE = "metrics.json"
VAL_SPLIT_FILE = "val_split.json"
_CHECKPOINT = re.compile(r"^epoch_\d+\.safetensors$")


@dataclass
class ResumeRepair:
    """What :func:`repair_for_resume` changed."""

    dropped_history_lines: int  # lines after the resumed epoch (or unreadable) removed
    removed_temporaries: list[str]  # names of the *.tmp files removed


def check_fresh_output_dir(out_dir: Path) -> None:
    """A new run must not mix its history and checkpoints with an earlier run's.

    Raises:
        ValueError: ``out_dir`` already holds ``history.jsonl`` or ``epoch_NNN.safetensors``, or a
            ``config.yaml`` / ``metrics.json`` the run would replace.
    """
    if not out_dir.is_dir():
        return
    found = sorted(p.name for p in out_dir.iterdir() if p.name == HISTORY_FILE or _CHECKPOINT.match(p.name))
    if found:
        raise ValueError(f"{out_dir} already holds a run ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}): "
                         f"continue it with --resume {out_dir}, or choose another train.output_dir.")
    taken = [name for name in (CONFIG_FILE, METRICS_FILE) if (out_dir / name).exists()]
    if taken:  # e.g. train.output_dir=. beside the user's own config.yaml: a new run would replace it
        raise ValueError(f"{out_dir} holds {' and '.join(taken)}, which a new run writes: choose another "
                         "train.output_dir (or remove them if they are left from a run that stopped early).")


def write_run_config(out_dir: Path, resolved: dict[str, Any]) -> Path:
    """Write ``config.yaml`` (plain YAML: numbers, strings, lists) atomically; returns its path."""
    text = ("# The full resolved configuration of this run (python -m train); see train/config.py and\n"
            "# signal_core/config.py for the meaning of each field.\n"
            + yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None))
    return atomic_write(out_dir / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text))


def record_val_split(out_dir: Path, record: dict | None, resuming: bool) -> None:
    """Write the validation split a run trains without (None: none); a resumed run must hold out the same.

    Raises:
        ValueError: ``resuming`` and the run folder's ``val_split.json`` records another split (or none).
    """
    path = out_dir / VAL_SPLIT_FILE
    if not resuming:
        if record is not None:
            write_json(path, record)
        return
    saved = json.loads(path.read_text()) if path.is_file() else None
    if saved != record and _split_words(saved) == _split_words(record):
        raise ValueError(f"{out_dir}'s {VAL_SPLIT_FILE} holds out other identities or images than the same draw on "
                         "this --data-root: resume with the run's own --data-root.")
    if saved != record:
        raise ValueError(f"{out_dir} {_split_words(saved)} ({VAL_SPLIT_FILE}), not {_split_words(record)} as asked: "
                         "resume with the run's own train.val_ids and train.seed.")


def _split_words(record: dict | None) -> str:
    if not isinstance(record, dict):
        return "held out no validation identities"
    return f"held out {record.get('val_ids')} validation identities drawn with seed {record.get('seed')}"


def append_history(out_dir: Path, record: dict) -> None:
    """Append one JSON line (an epoch's losses) to ``history.jsonl``."""
    with open(out_dir / HISTORY_FILE, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()


def read_history(out_dir: Path) -> list[dict]:
    """The readable records of ``history.jsonl`` ([] if there is none)."""
    path = out_dir / HISTORY_FILE
    return read_history_file(path)[0] if path.is_file() else []


def read_history_file(path: Path) -> tuple[list[dict], int]:
    """The JSON records of a ``history.jsonl`` file and the number of unreadable lines skipped."""
    records, bad = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def repair_for_resume(out_dir: Path, epoch: int) -> ResumeRepair:
    """Make ``out_dir`` consistent with a resume after ``epoch``: keep the history lines of epochs
    1..``epoch`` only (rewritten atomically) and remove leftover ``*.tmp`` files."""
    removed = []
    for tmp in sorted(out_dir.glob("*.tmp")) if out_dir.is_dir() else []:
        if tmp.is_file():
            tmp.unlink()
            removed.append(tmp.name)
    path = out_dir / HISTORY_FILE
    dropped = 0
    if path.is_file():
        lines = path.read_text().splitlines()
        kept = [line for line in lines if _epoch_of(line) is not None and _epoch_of(line) <= epoch]
        dropped = len(lines) - len(kept)
        if dropped:
            text = "".join(line + "\n" for line in kept)
            atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    if dropped or removed:
        log.warning("resuming after epoch %d: removed %d history line(s) of later or unfinished epochs and %d "
                    "temporary file(s) %s from %s", epoch, dropped, len(removed), removed, out_dir)
    return ResumeRepair(dropped, removed)


def _epoch_of(line: str) -> int | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    epoch = record.get("epoch") if isinstance(record, dict) else None
    return epoch if isinstance(epoch, int) else None
