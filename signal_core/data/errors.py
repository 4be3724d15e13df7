"""Dataset errors and small file-system helpers shared by the dataset parsers."""
from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class DatasetError(ValueError):
    """A dataset folder does not have the layout or file names its parser expects.

    The message always says what is wrong (which folder / file) and what the expected layout or
    file-name pattern is, so that the user can fix the folder without reading a stack trace.
    """


def require_dir(path: Path, dataset: str, layout: str) -> Path:
    """Return ``path`` if it is a directory, else raise a :class:`DatasetError` showing the layout.

    Args:
        path: the folder that must exist.
        dataset: dataset name used in the message (e.g. ``"RGBNT201"``).
        layout: the expected folder layout, printed in the message.

    Returns:
        ``path`` unchanged.

    Raises:
        DatasetError: if ``path`` does not exist or is not a directory.
    """
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise DatasetError(
            f"{dataset}: expected folder '{path}' {what}. Point `root` at the {dataset} dataset folder; "
            f"the expected layout is:\n{layout}")
    return path


def list_images(folder: Path, dataset: str, layout: str) -> list[str]:
    """Sorted image file names (not paths) directly inside ``folder``; error if there are none.

    Args:
        folder: an existing folder.
        dataset: dataset name used in the message.
        layout: the expected folder layout, printed in the message.

    Returns:
        File names with an image extension (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``), sorted, so
        that parsing is deterministic (the authors use ``glob`` order, which depends on the file system).

    Raises:
        DatasetError: if the folder holds no image files.
    """
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."))
    if not names:
        raise DatasetError(
            f"{dataset}: folder '{folder}' holds no image files ({', '.join(IMAGE_EXTENSIONS)}). "
            f"Check that the dataset was fully extracted; the expected layout is:\n{layout}")
    return names


def require_files(folder: Path, names: list[str], dataset: str, modality: str, source: Path) -> None:
    """Check that every name in ``names`` exists in ``folder`` (one ``listdir``, no per-file stat).

    Args:
        folder: the modality folder that must hold the files.
        names: file names found in the ``source`` (RGB) folder.
        dataset: dataset name used in the message.
        modality: modality folder label used in the message (e.g. ``"NI"``).
        source: the folder the names were taken from, named in the message.

    Raises:
        DatasetError: naming the first missing file and how many are missing.
    """
    present = set(os.listdir(folder)) if folder.is_dir() else set()
    missing = [n for n in names if n not in present]
    if missing:
        raise DatasetError(
            f"{dataset}: modality file '{folder / missing[0]}' is missing ({len(missing)} file(s) in "
            f"'{folder}' missing in total). Every image in '{source}' needs a file with the same name in "
            f"the {modality} folder; restore the file or remove the whole triple.")


def is_digits(text: str) -> bool:
    """True if ``text`` is a non-empty run of ASCII digits (``int()`` alone would accept ``'1_0'``)."""
    return text.isascii() and text.isdigit()
