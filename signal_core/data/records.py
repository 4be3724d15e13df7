"""Records of one multi-modal object (RGB / NIR / TIR triple) and the parsed dataset container."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

UNKNOWN = -1  # the pid / camid / sceneid of an unknown identity, camera or scene (null in JSON rows)


def label_or_none(value: int | None) -> int | None:
    """A label for a JSON row: None where unknown (:data:`UNKNOWN`, any negative, or None)."""
    return None if value is None or value < 0 else int(value)


def label_from(value: int | None) -> int:
    """A label read from a JSON row: :data:`UNKNOWN` where it is None."""
    return UNKNOWN if value is None else int(value)


@dataclass(frozen=True)
class TripleRecord:
    """One object: three image paths plus its labels (:data:`UNKNOWN` where one is not known, e.g. a
    triples folder's file not named ``PPPPPP_camK_*``).

    Attributes:
        paths: (RGB, NIR, TIR) image paths. For RGBNT100 the same 768-wide file appears three
            times; the image loader crops the modality out of it.
        pid: identity. In ``ReIDDataset.train`` already relabelled to ``0..num_train_pids-1``;
            raw dataset ids in query / gallery.
        camid: 0-based camera index (see each parser for the offset taken from the file name).
        sceneid: scene index (MSVR310 only), else :data:`UNKNOWN`. The authors store it in the "trackid" slot.
    """

    paths: tuple[str, str, str]
    pid: int
    camid: int
    sceneid: int = UNKNOWN

    @property
    def is_single_file(self) -> bool:
        """True when all three modalities live in one image (RGBNT100 layout)."""
        return self.paths[0] == self.paths[1] == self.paths[2]


def relabel(records: Sequence[TripleRecord]) -> tuple[list[TripleRecord], int]:
    """Map raw pids to ``0..C-1`` in ascending raw-pid order.

    The authors use ``enumerate(set(pids))``; CPython's set order for small ints is usually but not
    always ascending, so ascending order is the faithful deterministic choice. Labels only index
    the ID classifier, which is not used at test time.

    Args:
        records: training records with raw pids.

    Returns:
        (records with relabelled pids, in the same order; number of distinct pids C).
    """
    pid2label = {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}
    return [dataclasses.replace(r, pid=pid2label[r.pid]) for r in records], len(pid2label)


@dataclass
class ReIDDataset:
    """A parsed multi-modal ReID dataset.

    Attributes:
        name: dataset name ("RGBNT201", "RGBNT100", "MSVR310").
        train: training records, pids relabelled to ``0..num_train_pids-1``.
        query: query records (raw pids).
        gallery: gallery records (raw pids). RGBNT201 uses the whole test set for both.
        num_train_pids: number of training identities (ID classifier size).
        num_train_cams: number of distinct training cameras (``len(set(camids))`` as the authors).
    """

    name: str
    train: list[TripleRecord]
    query: list[TripleRecord]
    gallery: list[TripleRecord]
    num_train_pids: int = field(default=-1)
    num_train_cams: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.num_train_pids < 0:
            self.num_train_pids = len({r.pid for r in self.train})
        if self.num_train_cams < 0:
            self.num_train_cams = len({r.camid for r in self.train})

    def summary(self) -> str:
        """A counts table (ids / images / cameras per split), like the authors' statistics print."""
        lines = [f"{self.name} statistics:",
                 "  subset   |   # ids | # images | # cameras",
                 "  ---------+---------+----------+----------"]
        for split in ("train", "query", "gallery"):
            recs: list[TripleRecord] = getattr(self, split)
            lines.append(f"  {split:<8} | {len({r.pid for r in recs}):7d} | {len(recs):8d} | "
                         f"{len({r.camid for r in recs}):9d}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"ReIDDataset(name={self.name!r}, train={len(self.train)}, query={len(self.query)}, "
                f"gallery={len(self.gallery)}, num_train_pids={self.num_train_pids}, "
                f"num_train_cams={self.num_train_cams})")
