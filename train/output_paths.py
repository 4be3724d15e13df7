"""An output never lands in what the command reads.

Each ``python -m train.*`` command declares its path flags by their argparse ``type`` (train/flags.py):
what it reads (``input_path``: ``--weights``, ``--triples``, ``--data-root``, ``--features``,
``--queries``, each ``--reuse`` of ``train.ablation``, ...; ``index_input``: a saved ``--index``) and
what it writes (``output_file``, ``output_folder``, ``feature_folder_output``, ``index_output``). Once
the flags are parsed, :func:`output_problem` compares their paths, symlinks resolved (and the same file
or folder under two names), and refuses

* an output that is, or lies inside, an existing input: ``train.search --features F --out
  F/manifest.json``, ``--html F/shard-00000.npz``, ``train.report --data-root D --out D/report``,
  ``train.export --weights W --out W``;
* an output that is, or lies inside, a feature folder or a triples folder it does not write:
  ``train.evaluate --report F`` (``train.extract --out F`` resumes ``F``, the one writer of a feature
  folder), an output inside ``train.extract --out``;
* two outputs of one path, unless both are folders (``--out r.html --html r.html``).

An output folder may hold an input (``train.extract --triples data/t --out data``): nothing there is replaced.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from signal_core.utils.messages import shown

FOLDER_KINDS = ("folder", "features")  # outputs that are folders (two of them may be one folder)
SHOWN = 200  # characters of a path in a message (a 5000-character path is shown by its start and end)


@dataclass(frozen=True)
class PathArgument:
    """A path a command reads (``kind`` None) or writes (``kind``: file, folder, features, index)."""

    flag: str  # "--out", or where the path was named ("train.output_dir")
    path: Path  # absolute, symlinks resolved
    kind: str | None = None


def resolved(text: str | os.PathLike, flag: str) -> Path:
    """``text`` as an absolute path, symlinks resolved as far as it exists; ``ValueError`` for a link loop."""
    try:
        return Path(text).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: RuntimeError before Python 3.13
        raise ValueError(f"{flag} '{shown(os.fspath(text), SHOWN)}' cannot be followed ({exc.__class__.__name__}: a "
                         "symlink loop?): give another path.") from None


def parsed_paths(actions: Iterable[argparse.Action], parsed: argparse.Namespace) -> list[PathArgument]:
    """The paths of the flags whose type declares them read or written (train/flags.py), as given; each of a
    repeated flag (``action="append"``: ``--reuse A --reuse B``)."""
    found = []
    for action in actions:
        value, kind = getattr(parsed, action.dest, None), getattr(action.type, "writes", None)
        if not action.option_strings or (kind is None and not getattr(action.type, "reads", False)):
            continue
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str) or not text.strip():
                continue
            local = action.type.local(text)
            if local is not None:
                found.append(PathArgument(action.option_strings[0], resolved(local, action.option_strings[0]), kind))
    return found


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except (OSError, ValueError):
        return None


def _same(a: Path, b: Path, b_stat: os.stat_result | None) -> bool:
    """One file or folder: the same path, or the same inode (a hard link, a bind mount)."""
    if a == b:
        return True
    a_stat = _stat(a) if b_stat is not None else None
    return a_stat is not None and os.path.samestat(a_stat, b_stat)


def _holder(path: Path, folder: Path) -> Path | None:
    """``path`` itself or the parent of it that is ``folder`` (None: ``path`` does not lie in ``folder``)."""
    folder_stat = _stat(folder)
    return next((p for p in (path, *path.parents) if _same(p, folder, folder_stat)), None)


def data_folder_kind(folder: Path) -> str | None:
    """What the project reads in ``folder``: "a feature folder" (python -m train.extract), "a triples folder"
    (RGB/, NI/, TI/), or None."""
    from signal_core.data.triples import is_triples_folder
    from signal_core.retrieval.feature_store import FORMAT, MANIFEST

    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            with open(manifest, "rb") as f:
                head = f.read(4096)
        except OSError:
            head = b""
        if FORMAT.encode() in head or any(folder.glob("shard-*.npz")):
            return "a feature folder (python -m train.extract)"
    return "a triples folder (RGB/, NI/, TI/)" if is_triples_folder(folder) else None


def _inside(out: PathArgument, folder: Path, label: str, why: str) -> str | None:
    """What is wrong when ``out`` is, or lies inside, ``folder`` (``label``: its flag or what it is)."""
    holder = _holder(out.path, folder)
    if holder is None:
        return None
    path = shown(str(out.path), SHOWN)
    if holder == out.path:
        return f"'{path}' is {'also ' if label.startswith('--') else ''}{label}{why}: choose another path."
    folder_text = shown(str(folder), SHOWN)
    where = f"{label} '{folder_text}'" if label.startswith("--") else f"'{folder_text}', {label}"
    return f"'{path}' lies inside {where}{why}: write it elsewhere."


def _data_folder_problem(out: PathArgument) -> str | None:
    """``out`` is, or lies inside, a feature or triples folder that it is not the writer of."""
    for folder in (out.path, *out.path.parents):
        kind = data_folder_kind(folder) if folder.is_dir() else None
        if kind is not None and not (folder == out.path and out.kind == "features" and "feature" in kind):
            return _inside(out, folder, kind, ", which this command does not write")
    return None


def output_problem(paths: list[PathArgument]) -> tuple[str, str] | None:
    """(the output's flag, what is wrong with it and what to do) for the first output that would land in an
    input, in a data folder it does not write, or on another output; None when every output is clear."""
    inputs = [p for p in paths if p.kind is None and p.path.exists()]
    outputs = [p for p in paths if p.kind is not None]
    for out in outputs:
        for source in inputs:
            problem = _inside(out, source.path, source.flag, ", which this command reads")
            if problem:
                return out.flag, problem
        for other in outputs:
            both_folders = out.kind in FOLDER_KINDS and other.kind in FOLDER_KINDS
            if other is not out and not both_folders and _same(out.path, other.path, _stat(other.path)):
                shown_path = shown(str(out.path), SHOWN)
                return out.flag, f"'{shown_path}' is also {other.flag}, which it would overwrite: choose another path."
            if other is not out and other.kind == "features" and out.path != other.path:
                problem = _inside(out, other.path, other.flag, ", the feature folder this command writes")
                if problem:
                    return out.flag, problem
        problem = _data_folder_problem(out)
        if problem:
            return out.flag, problem
    return None
