"""MSVR310 (vehicle ReID; visible / near-infrared / thermal) folder parser.

Layout: ``<split>/<vid folder>/{vis,ni,th}/<name>.jpg``; the three modality files of a triple
share the same file name (the authors list ``vis/`` and build ``ni/`` and ``th/`` paths from it).
Name positions (as the authors): vid = ``name[0:4]``, sceneid = ``name[6:9]``,
camid = ``name[11]`` used as is (NO -1 offset; the authors assert ``0 <= camid <= 7``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import DatasetError, list_images, require_dir, require_files
from .records import ReIDDataset, TripleRecord, relabel

NAME = "MSVR310"
LAYOUT = """  <root>/
    bounding_box_train/<vid>/vis/<name>.jpg  .../<vid>/ni/<name>.jpg  .../<vid>/th/<name>.jpg
    query3/<vid>/{vis,ni,th}/<name>.jpg
    bounding_box_test/<vid>/{vis,ni,th}/<name>.jpg
  with the same <name> in vis/, ni/ and th/, e.g. 0001_s012_v3_000.jpg"""
NAME_PATTERN = "'VVVV_sSSS_vC*' (VVVV = 4-digit vehicle id, SSS = 3-digit scene id, C = camera digit 0-7)"
PATTERN = re.compile(r"^(\d{4})..(\d{3})..([0-7])")  # positions 0:4, 6:9 and 11, as the authors
MODALITY_DIRS = ("vis", "ni", "th")


def parse_name(name: str) -> tuple[int, int, int]:
    """(vid, camid, sceneid) from an MSVR310 file name.

    Raises:
        DatasetError: if the positions do not hold digits or the camera is not 0-7.
    """
    match = PATTERN.match(name)
    if match is None:
        raise DatasetError(f"{NAME}: cannot parse file name '{name}'; expected {NAME_PATTERN}. "
                           "Rename or remove the file.")
    vid, scene, cam = (int(g) for g in match.groups())
    return vid, cam, scene


def parse_split(split_dir: Path) -> list[TripleRecord]:
    """Records of one split folder, sorted by vehicle folder then file name.

    The pid is taken from the file name (as the authors), not from the folder name.

    Raises:
        DatasetError: missing modality folder / file, empty split, or a bad file name.
    """
    vid_dirs = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not vid_dirs:
        raise DatasetError(f"{NAME}: folder '{split_dir}' holds no vehicle folders; the expected layout "
                           f"is:\n{LAYOUT}")
    records = []
    for vid_name in vid_dirs:
        dirs = [require_dir(split_dir / vid_name / m, NAME, LAYOUT) for m in MODALITY_DIRS]
        names = list_images(dirs[0], NAME, LAYOUT)
        for folder, modality in zip(dirs[1:], MODALITY_DIRS[1:]):
            require_files(folder, names, NAME, modality, dirs[0])
        for name in names:
            vid, camid, sceneid = parse_name(name)
            paths = (str(dirs[0] / name), str(dirs[1] / name), str(dirs[2] / name))
            records.append(TripleRecord(paths, vid, camid, sceneid))
    return records


def load_msvr310(root: str | Path) -> ReIDDataset:
    """Parse an MSVR310 folder.

    Args:
        root: the MSVR310 folder holding ``bounding_box_train/``, ``query3/``, ``bounding_box_test/``.

    Returns:
        The dataset with train pids relabelled and scene ids in ``sceneid``.

    Raises:
        DatasetError: on any layout problem (the message shows the expected layout).
    """
    root = require_dir(Path(root).expanduser(), NAME, LAYOUT)
    splits = [require_dir(root / s, NAME, LAYOUT) for s in ("bounding_box_train", "query3", "bounding_box_test")]
    train, num_pids = relabel(parse_split(splits[0]))
    return ReIDDataset(NAME, train, parse_split(splits[1]), parse_split(splits[2]), num_train_pids=num_pids)
