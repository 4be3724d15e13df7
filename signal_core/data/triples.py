"""A "triples folder": the user's own RGB / NIR / TIR images, three folders with the same file names.

::

    DIR/RGB/000001_cam1_000.jpg   DIR/NI/000001_cam1_000.jpg   DIR/TI/000001_cam1_000.jpg
    DIR/RGB/street_0042.png       DIR/NI/street_0042.png       DIR/TI/street_0042.png

Names of the form ``PPPPPP_camK_*.ext`` (the RGBNT201 convention) give identity PPPPPP and camera K
(0-based K - 1); any other name is accepted with identity and camera unknown (:data:`UNKNOWN`, -1,
in the record). The extraction CLI, the search CLI and the demo (``demo/gallery.py``) all read
folders with these functions.
"""
from __future__ import annotations

import logging
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..modalities import FOLDERS
from .errors import DatasetError
from .records import UNKNOWN, TripleRecord

TRIPLE_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_NAME_PATTERN = re.compile(r"^(\d{1,9})_cam(\d{1,3})(?:_|\.|$)", re.IGNORECASE)
log = logging.getLogger(__name__)
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


@dataclass(frozen=True)
class NameMatch:
    """How the image names of the three modality folders pair up (see :func:`match_triple_names`)."""

    triples: list[str]  # names present in every folder, sorted: one triple each
    incomplete: dict[str, list[str]]  # folder -> RGB names with no file of that name there
    orphans: list[str]  # "NI/name" / "TI/name" with no RGB image of that name (sorted)


def match_triple_names(names: Mapping[str, Iterable[str]]) -> NameMatch:
    """Pair the image names found in each modality folder (``{"RGB": [...], "NI": [...], "TI": [...]}``).

    The one rule of a triples folder, for a folder on disk and for an uploaded zip alike: an RGB
    image and the NI / TI files of the same name are a triple; an RGB image lacking one is
    incomplete (an error for the caller to report); an NI / TI image without an RGB image of its
    name is an orphan (to be listed as ignored, never dropped without a word).
    """
    by_folder = {folder: set(names.get(folder, ())) for folder in FOLDERS}
    rgb = by_folder[FOLDERS[0]]
    incomplete = {folder: sorted(rgb - by_folder[folder]) for folder in FOLDERS[1:] if rgb - by_folder[folder]}
    orphans = sorted(f"{folder}/{name}" for folder in FOLDERS[1:] for name in by_folder[folder] - rgb)
    triples = sorted(set.intersection(*by_folder.values()))
    return NameMatch(triples, incomplete, orphans)


@dataclass(frozen=True)
class TriplesFolder:
    """A scanned triples folder: its triples and every entry of RGB/, NI/, TI/ left out, with why."""

    records: list[TripleRecord]  # sorted by file name
    ignored: list[str]  # e.g. "NI/x.png (no RGB image of that name)", "RGB/pipe.jpg (not a regular file)"

    def ignored_note(self, limit: int = 5) -> str:
        """"ignored 2 entries of RGB/, NI/, TI/ that are not part of a triple: ..." ("" when none)."""
        if not self.ignored:
            return ""
        shown = "; ".join(self.ignored[:limit]) + ("; ..." if len(self.ignored) > limit else "")
        return f"ignored {len(self.ignored)} entr{'y' if len(self.ignored) == 1 else 'ies'} of " \
               f"{', '.join(f + '/' for f in FOLDERS)} that are not part of a triple: {shown}"


def _why_not_image(path: Path) -> str | None:
    """None for an image file a triple can use, else why not (a folder, a FIFO, a link to a device...)."""
    if path.name.startswith("."):
        return "hidden file"
    if path.is_symlink() and not path.exists():
        return "broken link"
    try:
        mode = path.stat().st_mode  # follows links: a link to an image is an image
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc.__class__.__name__}"
    if stat.S_ISDIR(mode):
        return "a folder"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device)"
    if path.suffix.lower() not in TRIPLE_IMAGE_EXTENSIONS:
        return f"not an image name ({', '.join(TRIPLE_IMAGE_EXTENSIONS)})"
    return None


def scan_triples_folder(root: str | Path) -> TriplesFolder:
    """Records of a triples folder, sorted by file name (unknown identity / camera = -1), and what was left out.

    Args:
        root: the folder holding ``RGB/``, ``NI/`` and ``TI/``.

    Returns:
        One record per RGB image (``paths`` = the RGB, NI, TI files of the same name), and every other
        entry of the three folders as ignored, with the reason: NI / TI images without an RGB image of
        their name, files that are not images, folders, FIFOs, links to devices, hidden files.

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
    images: dict[str, list[str]] = {}
    ignored = []
    for folder in FOLDERS:
        images[folder] = []
        for path in sorted((root / folder).iterdir()):
            why = _why_not_image(path)
            (ignored.append(f"{folder}/{path.name} ({why})") if why else images[folder].append(path.name))
    if not images[FOLDERS[0]]:
        raise DatasetError(f"'{root / 'RGB'}' holds no images ({', '.join(TRIPLE_IMAGE_EXTENSIONS)}); "
                           "put the RGB images of the triples there.")
    match = match_triple_names(images)
    if match.incomplete:
        folder, missing = next(iter(match.incomplete.items()))
        raise DatasetError(f"'{root / 'RGB' / missing[0]}' has no counterpart '{root / folder / missing[0]}' "
                           f"({len(missing)} RGB image(s) without a {folder} file, e.g. {missing[:5]}): every "
                           "triple needs the same file name in RGB, NI and TI; add the file or remove the triple.")
    ignored += [f"{name} (no RGB image of that name)" for name in match.orphans]
    records = []
    for name in match.triples:
        pid, camid = parse_triple_name(name)
        records.append(TripleRecord(tuple(str(root / d / name) for d in FOLDERS), pid, camid))  # type: ignore[arg-type]
    return TriplesFolder(records, sorted(ignored))


def read_triples_folder(root: str | Path) -> list[TripleRecord]:
    """The records of :func:`scan_triples_folder`; what it left out is logged as one warning naming it.

    Raises:
        DatasetError: as :func:`scan_triples_folder`.
    """
    scan = scan_triples_folder(root)
    if scan.ignored:
        log.warning("%s: %s", Path(root).expanduser(), scan.ignored_note())
    return scan.records
