"""What a generator may delete: only the files its own manifest lists.

The benchmark (``train_171/``, ``test/``, ``synthetic.json``) and the demo assets (``query/``,
``gallery/``, ``demo.json``) are written into folders a user names. Before writing, the target is
checked by :func:`prepare_target`: empty (or absent) folders are used as they are; anything in
them is refused unless ``overwrite``, and even then only the files listed by the manifest the
generator wrote last time are removed (with the folders they leave empty). A file the manifest
does not list (a user's own image, notes, a link) stops the run with its name: nothing is deleted.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from signal_core.modalities import FOLDERS


def files_under(root: Path, folders: Sequence[str]) -> list[str]:
    """Every non-folder entry under ``root/<folder>`` (links and special files included), as relative
    POSIX paths, sorted; a ``root/<folder>`` that is itself a file or link counts as one."""
    found = []
    for folder in folders:
        top = root / folder
        if top.is_symlink() or (top.exists() and not top.is_dir()):
            found.append(folder)
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            rel = Path(dirpath).relative_to(root)
            found += [(rel / d).as_posix() for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            found += [(rel / f).as_posix() for f in filenames]
    return sorted(found)


def triple_files(folder: str, names: Iterable[str]) -> set[str]:
    """``folder/RGB/name``, ``folder/NI/name``, ``folder/TI/name`` of every triple name."""
    return {f"{folder}/{modality}/{name}" for name in names for modality in FOLDERS}


def prepare_target(root: Path, folders: Sequence[str], manifest: str, written: Callable[[Path], set[str]],
                   overwrite: bool, what: str) -> None:
    """Make ``root`` ready for a generator that writes ``folders`` and ``manifest`` in it.

    Args:
        written: the relative paths a manifest file lists as written (raises ValueError if unreadable).
        what: the generated thing, for the messages (e.g. "demo assets").

    Raises:
        FileExistsError: the target holds files and ``overwrite`` is off, or it holds files its
            manifest does not list (named; nothing is deleted).
    """
    present = files_under(root, folders)
    has_manifest = (root / manifest).is_file()
    if not present and not has_manifest:
        return
    shown = ", ".join(f"{f}/" for f in folders) + f" or {manifest}"
    if not overwrite:
        raise FileExistsError(f"'{root}' already holds {what} ({shown}): pass --overwrite to replace the files "
                              "written by this generator, or choose another folder.")
    if not has_manifest:
        raise FileExistsError(f"'{root}' holds {present[0]} but no {manifest}: these files were not written by "
                              "this generator; nothing was deleted. Move them away or choose another folder.")
    try:
        owned = written(root / manifest)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileExistsError(f"'{root / manifest}' cannot be read ({exc.__class__.__name__}), so the files this "
                              "generator wrote are unknown; nothing was deleted. Remove the folder yourself or "
                              "choose another one.") from None
    foreign = [f for f in present if f not in owned]
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise FileExistsError(f"'{root}' holds files this generator did not write ({', '.join(foreign[:3])}{more}); "
                              "nothing was deleted. Move them away or choose another folder.")
    for rel in present:
        (root / rel).unlink()
    (root / manifest).unlink()
    for folder in folders:
        _remove_empty_folders(root / folder)


def _remove_empty_folders(top: Path) -> None:
    """Remove ``top`` and the folders under it, deepest first, where they are empty."""
    if not top.is_dir() or top.is_symlink():
        return
    for dirpath, _, _ in sorted(os.walk(top), key=lambda entry: -len(entry[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass  # not empty: it holds something this generator keeps
