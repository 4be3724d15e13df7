"""Features of many triples, in batches: in memory (:func:`encode_records`) or into a resumable
feature folder (:func:`extract_to_folder`, see :mod:`signal_core.retrieval.feature_store`).

Every triple goes through the authors' test transform (bilinear resize to the model's input size,
normalise with mean / std 0.5). A triple whose camera is known (and within the model's cameras) is
encoded with its camera embedding, the others with the mean camera embedding, row by row, so a
feature does not depend on the other triples of its batch. Features are L2-normalised float32, so
a dot product is the cosine similarity.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import SignalConfig
from ..data import DatasetError, TripleRecord, build_transforms, label_or_none, load_triple
from ..modalities import MODALITIES
from ..model.signal_model import SignalModel
from .feature_store import FeatureWriter
from .split_features import FeaturesFn, as_engine, batch_features

SKIP_HINT = "pass --skip-bad to skip unreadable triples (they are listed in the manifest)"


def row_metadata(record: TripleRecord) -> dict[str, Any]:
    """``{"name", "paths", "pid", "camid", "sceneid"}`` of a record, ``None`` where unknown (< 0)."""
    return {"name": Path(record.paths[0]).name, "paths": list(record.paths), "pid": label_or_none(record.pid),
            "camid": label_or_none(record.camid), "sceneid": label_or_none(record.sceneid)}


def plan_sha256(records: Sequence[TripleRecord]) -> str:
    """A hash of the list of triples (paths and labels, in order): a resumed run must see the same list."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(f"{r.paths}|{r.pid}|{r.camid}|{r.sceneid}\n".encode())
    return digest.hexdigest()


class _Triples(Dataset):
    """Transformed triples; an unreadable one gives an item with ``error`` set instead of raising."""

    def __init__(self, records: Sequence[TripleRecord], image_size: tuple[int, int]) -> None:
        self.records = list(records)
        self.transform = build_transforms(tuple(image_size), train=False)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            tensors = self.transform(load_triple(self.records[index].paths))
        except (DatasetError, OSError, ValueError, Image.DecompressionBombError) as exc:
            return {"index": index, "error": str(exc)}
        return dict(zip(MODALITIES, tensors), index=index, error=None)


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    good = [it for it in items if it["error"] is None]
    batch: dict[str, Any] = {m: torch.stack([it[m] for it in good]) if good else None for m in MODALITIES}
    batch["index"] = [it["index"] for it in good]
    batch["bad"] = [(it["index"], it["error"]) for it in items if it["error"] is not None]
    return batch


@dataclass
class EncodedRecords:
    """Features of the readable triples, their metadata rows, and the unreadable triples."""

    features: np.ndarray  # [n, D] float32, L2-normalised
    rows: list[dict[str, Any]]
    skipped: list[dict[str, Any]] = field(default_factory=list)  # name, paths, error


def encode_records(model: SignalModel, records: Sequence[TripleRecord], device: torch.device | str = "cpu",
                   batch_size: int = 32, num_workers: int = 0, skip_bad: bool = False,
                   on_batch: Callable[[int], None] | None = None,
                   features_fn: FeaturesFn | None = None) -> EncodedRecords:
    """Features of ``records``, in order (the unreadable ones left out when ``skip_bad``).

    Args:
        model: in eval mode, on ``device``, with its inference precision set.
        on_batch: called with the number of triples done after each batch (progress).
        features_fn: a feature engine (signal_core.deploy.engines) used instead of ``model.extract_features``.

    Raises:
        DatasetError: an image cannot be read and ``skip_bad`` is False (the message names the file).
    """
    engine = as_engine(model, features_fn)
    loader = DataLoader(_Triples(records, model.cfg.image_size), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=_collate)
    chunks, rows, skipped = [], [], []
    for batch in loader:
        for index, error in batch["bad"]:
            if not skip_bad:
                raise DatasetError(f"{error}; {SKIP_HINT}")
            skipped.append({**row_metadata(records[index]), "error": error})
        if batch["index"]:
            camids = [records[i].camid for i in batch["index"]]
            feats = batch_features(engine, *(batch[m] for m in MODALITIES), camids, model.num_cameras)
            chunks.append(F.normalize(feats, dim=1).numpy())
            rows.extend(row_metadata(records[i]) for i in batch["index"])
        if on_batch is not None:
            on_batch(len(batch["index"]) + len(batch["bad"]))
    features = np.concatenate(chunks) if chunks else np.zeros((0, model.cfg.feature_dim), np.float32)
    return EncodedRecords(features.astype(np.float32, copy=False), rows, skipped)


def registration_setting(cfg: SignalConfig) -> dict[str, Any]:
    """What features record of the model's image-level registration: ``{"registration": name}``, nothing for
    ``none`` (the authors' model; so folders and indexes written before registration existed still match)."""
    return {} if cfg.registration == "none" else {"registration": cfg.registration}


def recorded_registration(settings: Mapping[str, Any]) -> str:
    """The registration features were made with, from their recorded settings (absent: ``none``)."""
    return str(settings.get("registration", "none"))


def check_registration(recorded: Mapping[str, Any], cfg: SignalConfig, what: str) -> None:
    """Refuse to compare features of ``what`` (made with ``recorded`` settings) with those of a model of ``cfg``
    when their registrations differ: features with and without registration never mix.

    Raises:
        ValueError: naming both registrations and the flag that sets the model's.
    """
    made_with = recorded_registration(recorded)
    if made_with != cfg.registration:
        raise ValueError(f"{what} holds features made with registration '{made_with}', the model has "
                         f"'{cfg.registration}': pass --registration {made_with} (or extract them again).")


def folder_settings(cfg: SignalConfig, records: Sequence[TripleRecord], settings: dict[str, Any],
                    shard_size: int) -> dict[str, Any]:
    """The settings a feature folder records (compared on resume): the run's, plus the model's input
    size, feature dimension and registration (:func:`registration_setting`), the shard size and the plan's hash."""
    return {**settings, "image_size": list(cfg.image_size), "feature_dim": cfg.feature_dim,
            **registration_setting(cfg), "shard_size": int(shard_size), "plan_sha256": plan_sha256(records),
            "normalised": True}


@dataclass
class ExtractionSummary:
    """What :func:`extract_to_folder` did."""

    out: Path
    count: int  # rows in the folder now
    planned: int  # triples in the plan
    skipped: list[dict[str, Any]]  # unreadable triples (with --skip-bad)
    shards_reused: int  # finished shards found and kept (resume)
    shards_written: int  # shards computed by this run
    processed: int  # triples read by this run (features + skipped)
    complete: bool
    seconds: float  # wall time of this run's encoding


def extract_to_folder(model: SignalModel, records: Sequence[TripleRecord], out: str | Path, model_info: dict[str, Any],
                      settings: dict[str, Any], device: torch.device | str = "cpu", batch_size: int = 32,
                      num_workers: int = 0, shard_size: int = 512, skip_bad: bool = False, progress: bool = True,
                      max_shards: int | None = None, features_fn: FeaturesFn | None = None) -> ExtractionSummary:
    """Write (or resume) the feature folder ``out`` for ``records``, one shard of ``shard_size`` rows at a time.

    Args:
        model_info: ``{"sha256", "path"}`` of the weights (a resume with other weights is refused).
        settings: the run's settings (source, precision...); image size, feature dimension, shard
            size and the plan's hash are added. A resume with other settings is refused.
        max_shards: stop after computing this many shards (a controlled interruption, for tests).
        features_fn: a feature engine used instead of ``model.extract_features`` (record which one in
            ``settings``, so that a resume with another engine is refused).

    Raises:
        FeatureStoreError: ``out`` holds another run's features (the message lists the differences).
        DatasetError: an image cannot be read and ``skip_bad`` is False.
    """
    settings = folder_settings(model.cfg, records, settings, shard_size)
    writer = FeatureWriter(out, model_info, settings, len(records))
    starts = range(0, len(records), shard_size)
    done = writer.finished_shards
    todo = [i for i in range(len(starts)) if i not in done]
    bar = tqdm(total=len(records), initial=sum(min(shard_size, len(records) - i * shard_size) for i in done),
               desc="features", unit="triple", disable=not progress)
    start_time, written, processed = time.perf_counter(), 0, 0
    for index in todo:
        if max_shards is not None and written >= max_shards:
            break
        chunk = records[index * shard_size:(index + 1) * shard_size]
        encoded = encode_records(model, chunk, device, batch_size, num_workers, skip_bad, on_batch=bar.update,
                                 features_fn=features_fn)
        writer.write_shard(index, encoded.features, encoded.rows, encoded.skipped)
        written += 1
        processed += len(chunk)
    bar.close()
    complete = len(writer.finished_shards) == len(starts)
    manifest = writer.finish() if complete else writer.manifest
    return ExtractionSummary(Path(out), int(manifest["count"]), len(records), list(manifest["skipped"]), len(done),
                             written, processed, complete, time.perf_counter() - start_time)
