"""A validation split held out of the training identities, for choosing an epoch without the test split.

A seeded draw of ``count`` training identities (by identity, never by image) leaves the training split;
their triples form a validation split the way RGBNT201's test split is formed: query = gallery = all
of them, ranked with the evaluation protocol's exclusion (same identity and same camera, or same scene
where every record has one), so each image is searched for among the other cameras' images of its
identity. The remaining identities are relabelled ``0..C-1`` (the ID classifiers shrink to C).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .records import ReIDDataset, TripleRecord, relabel

MIN_TRAIN_IDS = 2  # triplet mining needs a negative identity


@dataclass(frozen=True)
class ValidationSplit:
    """The training data without the held-out identities, and the validation split made of them.

    Attributes:
        train: the dataset to train on (train pids relabelled; query / gallery = the dataset's test split).
        validation: query = gallery = the held-out identities' triples (pids as they were: labels of the
            full training split).
        held_out: the held-out identities, as labels of the full training split (ascending raw ids).
        seed: the seed of the draw.
    """

    train: ReIDDataset
    validation: ReIDDataset
    held_out: tuple[int, ...]
    seed: int

    def record(self) -> dict:
        """What a run folder keeps of the split: enough to check and to redo it (JSON values)."""
        files = sorted(Path(r.paths[0]).name for r in self.validation.query)
        return {"seed": self.seed, "val_ids": len(self.held_out),
                "train_ids": self.train.num_train_pids + len(self.held_out),
                "held_out_labels": list(self.held_out), "held_out_files": files}


def hold_out_identities(dataset: ReIDDataset, count: int, seed: int) -> ValidationSplit:
    """Move ``count`` training identities, drawn with ``seed``, out of ``dataset``'s training split.

    Raises:
        ValueError: ``count`` below 1, leaving fewer than 2 training identities, or held-out identities
            none of which is seen by two cameras (scenes), so that no validation query has a match.
    """
    labels = sorted({r.pid for r in dataset.train})
    if count < 1 or len(labels) - count < MIN_TRAIN_IDS:
        raise ValueError(f"holding out {count} of the {len(labels)} training identities leaves "
                         f"{len(labels) - count} to train on; hold out 1 to {len(labels) - MIN_TRAIN_IDS}.")
    drawn = np.random.default_rng(seed).choice(len(labels), size=count, replace=False)
    held_out = tuple(sorted(labels[i] for i in drawn))
    chosen = set(held_out)
    kept, num_pids = relabel([r for r in dataset.train if r.pid not in chosen])
    held = [r for r in dataset.train if r.pid in chosen]
    if not _has_a_match(held):
        raise ValueError(f"none of the {count} held-out identities has images from two cameras (or scenes), so no "
                         "validation query has a match; hold out more identities or draw with another seed.")
    train = ReIDDataset(dataset.name, kept, dataset.query, dataset.gallery, num_train_pids=num_pids,
                        num_train_cams=dataset.num_train_cams)  # the same rig: the camera count stays
    validation = ReIDDataset(f"{dataset.name} validation", [], query=held, gallery=list(held), num_train_pids=0,
                             num_train_cams=dataset.num_train_cams)
    return ValidationSplit(train, validation, held_out, seed)


def _has_a_match(records: list[TripleRecord]) -> bool:
    """Whether some identity has two images the protocol may pair (other camera, or other scene)."""
    by_scene = all(r.sceneid >= 0 for r in records)
    seen: dict[int, set[int]] = {}
    for r in records:
        seen.setdefault(r.pid, set()).add(r.sceneid if by_scene else r.camid)
    return any(len(places) > 1 for places in seen.values())
