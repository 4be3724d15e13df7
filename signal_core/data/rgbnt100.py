"""RGBNT100 (vehicle ReID) folder parser.

Each object is ONE image of 768 x 128 (W x H) with the three modalities side by side:
RGB = columns 0-255, NI = 256-511, TI = 512-767 (cropped by the image loader). pid and camera come
from the regex ``([-\\d]+)_c([-\\d]+)`` on the file name; camid = c - 1.

The authors skip pid == -1 ("junk") only when building the label map but keep such images and then
``assert 1 <= pid <= 600`` and ``1 <= camid <= 8``, i.e. any junk / out-of-range image stops
loading. We match that and raise a :class:`DatasetError` naming the file instead.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import DatasetError, list_images, require_dir
from .records import ReIDDataset, TripleRecord, relabel

NAME = "RGBNT100"
LAYOUT = """  <root>/rgbir/
    bounding_box_train/<name>.jpg
    query/<name>.jpg
    bounding_box_test/<name>.jpg
  each image 768x128 (W x H) = [RGB | NI | TI] side by side, e.g. 0001_c003_....jpg"""
NAME_PATTERN = ("'<pid>_c<cam>...' (regex ([-\\d]+)_c([-\\d]+)), with 1 <= pid <= 600 and "
                "1 <= cam <= 8")
PATTERN = re.compile(r"([-\d]+)_c([-\d]+)")
PID_RANGE = (1, 600)
CAM_RANGE = (1, 8)


def parse_name(name: str) -> tuple[int, int]:
    """(pid, camid) from an RGBNT100 file name, camid 0-based.

    The authors search the regex in the full path; we search the file name only, so a digit-laden
    parent folder cannot be mistaken for the id.

    Raises:
        DatasetError: unparsable name, junk pid (-1 / 0) or out-of-range pid / camera.
    """
    match = PATTERN.search(name)
    try:
        pid, cam = (int(g) for g in match.groups()) if match else (None, None)
    except ValueError:  # e.g. a lone '-'
        pid, cam = None, None
    if pid is None or cam is None:
        raise DatasetError(f"{NAME}: cannot parse file name '{name}'; expected {NAME_PATTERN}. "
                           "Rename or remove the file.")
    if not (PID_RANGE[0] <= pid <= PID_RANGE[1] and CAM_RANGE[0] <= cam <= CAM_RANGE[1]):
        raise DatasetError(f"{NAME}: file '{name}' has pid {pid} / camera {cam}; expected {NAME_PATTERN} "
                           "(junk images with pid -1 are not supported, as in the authors' code). "
                           "Remove the file.")
    return pid, cam - 1


def parse_split(split_dir: Path) -> list[TripleRecord]:
    """Records of one split folder, sorted by file name; ``paths`` holds the same file 3 times."""
    records = []
    for name in list_images(split_dir, NAME, LAYOUT):
        pid, camid = parse_name(name)
        path = str(split_dir / name)
        records.append(TripleRecord((path, path, path), pid, camid))
    return records


def load_rgbnt100(root: str | Path) -> ReIDDataset:
    """Parse an RGBNT100 folder.

    Args:
        root: the RGBNT100 folder holding ``rgbir/``; the ``rgbir`` folder itself is accepted too.

    Returns:
        The dataset with train pids relabelled.

    Raises:
        DatasetError: on any layout problem (the message shows the expected layout).
    """
    root = require_dir(Path(root).expanduser(), NAME, LAYOUT)
    base = root / "rgbir"
    if not base.is_dir() and (root / "bounding_box_train").is_dir():
        base = root  # user pointed at rgbir/ itself
    base = require_dir(base, NAME, LAYOUT)
    splits = [require_dir(base / s, NAME, LAYOUT) for s in ("bounding_box_train", "query", "bounding_box_test")]
    train, num_pids = relabel(parse_split(splits[0]))
    return ReIDDataset(NAME, train, parse_split(splits[1]), parse_split(splits[2]), num_train_pids=num_pids)
