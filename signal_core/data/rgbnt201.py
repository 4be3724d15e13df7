"""RGBNT201 (person ReID; RGB / near-infrared / thermal-infrared) folder parser.

File names look like ``000123_cam2_...jpg``: pid = the first six characters of the first
``_``-separated field, camera = the 4th character of the second field ("camK"), camid = K - 1.
The same file name appears in the RGB, NI and TI folders. Query and gallery are both the whole
test set (as in the authors' code and protocol).
"""
from __future__ import annotations

from pathlib import Path

from ..modalities import FOLDERS
from .errors import DatasetError, is_digits, list_images, require_dir, require_files
from .records import ReIDDataset, TripleRecord, relabel

NAME = "RGBNT201"
LAYOUT = """  <root>/
    train_171/RGB/<name>.jpg   train_171/NI/<name>.jpg   train_171/TI/<name>.jpg
    test/RGB/<name>.jpg        test/NI/<name>.jpg        test/TI/<name>.jpg
  with the same <name> in the three modality folders, e.g. 000123_cam2_0_00.jpg"""
NAME_PATTERN = "'PPPPPP_camK_*.jpg' (PPPPPP = 6-digit person id, K = camera digit 1-9)"


def parse_name(name: str) -> tuple[int, int]:
    """(pid, camid) from an RGBNT201 file name, camid 0-based.

    Args:
        name: file name such as ``000123_cam2_0_00.jpg``.

    Returns:
        (pid, camid) = (123, 1) for the example.

    Raises:
        DatasetError: if the name does not follow the pattern.
    """
    fields = name.split("_")
    pid_text = fields[0][0:6]
    cam_text = fields[1][3:4] if len(fields) > 1 else ""
    if not (is_digits(pid_text) and is_digits(cam_text)):
        raise DatasetError(f"{NAME}: cannot parse file name '{name}'; expected {NAME_PATTERN}. "
                           "Rename or remove the file.")
    return int(pid_text), int(cam_text) - 1


def parse_split(split_dir: Path) -> list[TripleRecord]:
    """Records of one split folder (``train_171`` or ``test``), sorted by file name.

    Raises:
        DatasetError: missing modality folder / file, empty RGB folder, or a bad file name.
    """
    dirs = [require_dir(split_dir / m, NAME, LAYOUT) for m in FOLDERS]
    names = list_images(dirs[0], NAME, LAYOUT)
    for folder, modality in zip(dirs[1:], FOLDERS[1:]):
        require_files(folder, names, NAME, modality, dirs[0])
    records = []
    for name in names:
        pid, camid = parse_name(name)
        paths = (str(dirs[0] / name), str(dirs[1] / name), str(dirs[2] / name))
        records.append(TripleRecord(paths, pid, camid))
    return records


def load_rgbnt201(root: str | Path) -> ReIDDataset:
    """Parse an RGBNT201 folder.

    Args:
        root: the RGBNT201 folder (the one holding ``train_171/`` and ``test/``).

    Returns:
        The dataset; train pids relabelled, query = gallery = the test set.

    Raises:
        DatasetError: on any layout problem (the message shows the expected layout).
    """
    root = require_dir(Path(root).expanduser(), NAME, LAYOUT)
    train_dir = require_dir(root / "train_171", NAME, LAYOUT)
    test_dir = require_dir(root / "test", NAME, LAYOUT)
    train, num_pids = relabel(parse_split(train_dir))
    test = parse_split(test_dir)
    return ReIDDataset(NAME, train, query=test, gallery=list(test), num_train_pids=num_pids)
