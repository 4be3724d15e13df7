"""A "triples folder": the user's own RGB / NIR / TIR images, three folders with the same file names.

::

    DIR/RGB/000001_cam1_000.jpg   DIR/NI/000001_cam1_000.jpg   DIR/TI/000001_cam1_000.jpg
    DIR/RGB/street_0042.png       DIR/NI/street_0042.png       DIR/TI/street_0042.png

Names of the form ``PPPPPP_camK_*.ext`` (the RGBNT201 convention) give identity PPPPPP and camera K
(0-based K - 1); any other name is accepted with identity and camera unknown (-1 in the record).
These are the demo's rules (``demo/gallery.py``), as a library function that gives
:class:`TripleRecord` objects, so the extraction CLI, the search CLI and the demo read folders alike.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..modalities import FOLDERS
from .errors import DatasetError
from .records import TripleRecord

TRIPLE_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
UNKNOWN = -1  # pid / camid of a name that does not follow PPPPPP_camK_*
_NAME_PATTERN = re.compile(r"^(\d{1,9})_cam(\d{1,3})(?:_|\.|$)", re.IGNORECASE)
_EXAMPLE = ("e.g. RGB/000001_cam1_000.jpg, NI/000001_cam1_000.jpg, TI/000001_cam1_000.jpg")


def parse_triple_name(name: str) -> tuple[int, int]:
    """(pid, 0-based camid) from a name like ``000123_cam2_0.jpg`` -> (123, 1); (-1, -1) if the name
    does not follow that pattern (or names camera 0)."""
    match = _NAME_PATTERN.match(Path(name).name)
    if not match or int(match[2]) < 1:
        return UNKNOWN, UNKNOWN
    return int(match[1]), int(match[2]) - 1


def is_triples_folder(root: str | Path) -> bool:
    """True when ``root`` has the RGB, NI and TI sub-folders of a triples folder."""
    root = Path(root).expanduser()
    return all((root / d).is_dir() for d in FOLDERS)


def _image_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in TRIPLE_IMAGE_EXTENSIONS and not p.name.startswith("."))


def read_triples_folder(root: str | Path) -> list[TripleRecord]:
    """Records of a triples folder, sorted by file name (unknown identity / camera = -1).

    Args:
        root: the folder holding ``RGB/``, ``NI/`` and ``TI/``.

    Returns:
        One record per RGB image; ``paths`` = (RGB, NI, TI) files of the same name.

    Raises:
        DatasetError: the folder or a modality folder is missing, the RGB folder has no images,
            or an RGB image has no file of the same name in NI or TI (the message names it).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"triples folder '{root}' does not exist.")
    missing_dirs = [d for d in FOLDERS if not (root / d).is_dir()]
    if missing_dirs:
        raise DatasetError(f"'{root}' is not a triples folder: sub-folder(s) {', '.join(missing_dirs)} missing. "
                           f"It needs {', '.join(FOLDERS)} holding the same file names ({_EXAMPLE}).")
    names = _image_names(root / "RGB")
    if not names:
        raise DatasetError(f"'{root / 'RGB'}' holds no images ({', '.join(TRIPLE_IMAGE_EXTENSIONS)}); "
                           "put the RGB images of the triples there.")
    for folder in FOLDERS[1:]:
        present = set(_image_names(root / folder))
        missing = [n for n in names if n not in present]
        if missing:
            raise DatasetError(f"'{root / 'RGB' / missing[0]}' has no counterpart '{root / folder / missing[0]}' "
                               f"({len(missing)} RGB image(s) without a {folder} file, e.g. {missing[:5]}): every "
                               "triple needs the same file name in RGB, NI and TI; add the file or remove the triple.")
    records = []
    for name in names:
        pid, camid = parse_triple_name(name)
        records.append(TripleRecord(tuple(str(root / d / name) for d in FOLDERS), pid, camid))  # type: ignore[arg-type]
    return records
