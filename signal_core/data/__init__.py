"""Multi-modal ReID data: dataset parsers, image transforms, torch Dataset and P x K sampler.

Public API:
    load_dataset(name, root) -> ReIDDataset     name in {"rgbnt201", "rgbnt100", "msvr310"}
    TripleRecord, ReIDDataset, DatasetError     unknown pid / camid / sceneid: UNKNOWN (-1)
    build_transforms(image_size, train, paired=False), load_triple
    read_triples_folder(root) -> list[TripleRecord]   a folder with RGB/ NI/ TI/ sharing file names
    TripleDataset(records, transform)           items: {"rgb","nir","tir","pid","camid","sceneid","index","path"}
    IdentitySampler(records_or_pids, batch_size, num_instances, seed, rank, world_size)
    hold_out_identities(dataset, count, seed) -> ValidationSplit   training identities held out for validation
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .dataset import TripleDataset
from .errors import DatasetError
from .msvr310 import load_msvr310
from .records import UNKNOWN, ReIDDataset, TripleRecord, label_from, label_or_none
from .rgbnt100 import load_rgbnt100
from .rgbnt201 import load_rgbnt201
from .sampler import IdentitySampler
from .transforms import build_test_transform, build_train_transform, build_transforms, load_triple, split_panels
from .triples import is_triples_folder, parse_triple_name, read_triples_folder
from .validation import ValidationSplit, hold_out_identities

LOADERS: dict[str, Callable[[str | Path], ReIDDataset]] = {
    "rgbnt201": load_rgbnt201,
    "rgbnt100": load_rgbnt100,
    "msvr310": load_msvr310,
}
DATASETS = tuple(LOADERS)  # the dataset names of load_dataset and of every --dataset flag


def load_dataset(name: str, root: str | Path) -> ReIDDataset:
    """Parse a dataset folder.

    Args:
        name: "rgbnt201", "rgbnt100" or "msvr310" (case-insensitive).
        root: the dataset folder itself (e.g. ``.../RGBNT201`` holding ``train_171/`` and ``test/``).

    Returns:
        The parsed dataset (train pids relabelled to ``0..num_train_pids-1``).

    Raises:
        DatasetError: unknown name, or a folder / file problem (the message shows the expected layout).
    """
    loader = LOADERS.get(str(name).lower())
    if loader is None:
        raise DatasetError(f"unknown dataset name {name!r}; choose one of {sorted(LOADERS)}")
    return loader(root)


__all__ = [
    "DATASETS", "UNKNOWN", "DatasetError", "IdentitySampler", "ReIDDataset", "TripleDataset", "TripleRecord",
    "ValidationSplit", "build_test_transform", "build_train_transform", "build_transforms", "hold_out_identities",
    "is_triples_folder", "label_from", "label_or_none", "load_dataset", "load_triple", "parse_triple_name",
    "read_triples_folder", "split_panels",
]
