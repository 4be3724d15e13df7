"""One way to write and open a saved gallery index, whichever engine holds it.

A *saved index* is a faiss index file (``gallery.sgi``, :class:`signal_core.retrieval.index.GalleryIndex`) or
a Milvus collection (``milvus:gallery.db`` or ``milvus://host:19530``,
:class:`signal_core.retrieval.milvus_index.MilvusGallery`). Both keep, per row, the triple's ``name``,
``paths`` (a JSON list), ``pid``, ``camid`` and ``sceneid`` (-1: unknown), and ``info``: the weights'
sha256 and the features' precision, so that a search can check its queries come from the same model.

    write_index("milvus:gallery.db", features, rows, {"model_sha256": digest, "precision": "fp32"})
    index = open_index("milvus:gallery.db", dim=3072, model_sha256=digest)
    rows = index_rows(index)                        # [{"name", "paths", "pid", "camid", "sceneid"}, ...]
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import label_from, label_or_none
from .index import GalleryIndex, IndexFileError
from .milvus_index import MilvusGallery, MilvusGalleryError, is_milvus_uri

SavedIndex = GalleryIndex | MilvusGallery
INDEX_SUFFIX = ".sgi"  # a faiss gallery index file
ROW_FIELDS = ("pid", "camid", "sceneid")


def is_index_spec(spec: str | os.PathLike) -> bool:
    """True for a ``milvus:`` URI or a path ending in ``.sgi`` (which may not exist yet)."""
    return is_milvus_uri(spec) or str(spec).lower().endswith(INDEX_SUFFIX)


def rows_metadata(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Index metadata columns of feature-folder rows (``signal_core.retrieval.feature_store``): unknown labels
    -> :data:`signal_core.data.UNKNOWN`."""
    columns: dict[str, np.ndarray] = {key: np.asarray([label_from(r.get(key)) for r in rows], dtype=np.int64)
                                      for key in ROW_FIELDS}
    columns["name"] = np.asarray([str(r.get("name", "")) for r in rows], dtype=str)
    columns["paths"] = np.asarray([json.dumps(list(r.get("paths", []))) for r in rows], dtype=str)
    return columns


def index_rows(index: SavedIndex) -> list[dict[str, Any]]:
    """The rows (``name``, ``paths``, ``pid``, ``camid``, ``sceneid``; None where unknown) of a saved index.

    Raises:
        ValueError: the index was saved without its rows (a ``GalleryIndex`` built by hand).
    """
    meta = index.metadata
    missing = [key for key in ("name", "paths", *ROW_FIELDS) if key not in meta]
    if missing:
        raise ValueError(f"the gallery index holds no {', '.join(missing)} per row; build it with python -m "
                         "train.extract ... --index PATH|URI.")
    return [{"name": str(name), "paths": json.loads(str(paths)), "pid": label_or_none(int(pid)),
             "camid": label_or_none(int(camid)), "sceneid": label_or_none(int(sceneid))}
            for name, paths, pid, camid, sceneid in zip(meta["name"], meta["paths"], meta["pid"], meta["camid"],
                                                         meta["sceneid"])]


def write_index(spec: str | os.PathLike, features: np.ndarray, rows: Sequence[Mapping[str, Any]],
                info: Mapping[str, Any], kind: str = "auto") -> SavedIndex:
    """Index ``features`` ([N, D], L2-normalised) with their ``rows`` into ``spec`` and save it.

    Args:
        spec: a ``.sgi`` file (written atomically, replaced if present) or a ``milvus:`` URI (a new
            collection; an existing one is kept when it already holds these N rows of the same weights).
        info: ``{"model_sha256", "precision", ...}`` kept with the index.
        kind: the faiss kind of a ``.sgi`` file (exact | ivfpq | auto); a Milvus collection is FLAT.

    Raises:
        MilvusGalleryError: the collection exists with other content, or Milvus cannot be reached.
        ValueError: ``spec`` is neither.
    """
    metadata = rows_metadata(rows)
    if is_milvus_uri(spec):
        try:
            existing = MilvusGallery.load(str(spec), dim=features.shape[1], model_sha256=info.get("model_sha256"))
        except MilvusGalleryError as exc:
            if "holds no gallery collection" not in str(exc):
                raise
            return MilvusGallery.build(str(spec), features, metadata, info=info)
        if len(existing) != len(features):
            raise MilvusGalleryError(f"'{spec}' already holds a gallery of {len(existing)} rows (these features: "
                                     f"{len(features)}); give another #collection or file, or drop it first.")
        return existing
    if not str(spec).lower().endswith(INDEX_SUFFIX):
        raise ValueError(f"--index '{spec}': give a faiss index file ending in {INDEX_SUFFIX} or a milvus: URI.")
    index = GalleryIndex.build(features, kind=kind, metadata=metadata)
    index.info = dict(info)
    index.save(spec)
    return index


def open_index(spec: str | os.PathLike, dim: int | None = None, model_sha256: str | None = None) -> SavedIndex:
    """Open a saved index (``.sgi`` file or ``milvus:`` URI); with ``dim`` / ``model_sha256``, check it matches.

    Raises:
        IndexFileError / MilvusGalleryError (both ValueErrors): missing, corrupt, unreachable, or
            made from another dimension or other weights; the message says what to do.
    """
    if is_milvus_uri(spec):
        return MilvusGallery.load(str(spec), dim=dim, model_sha256=model_sha256)
    path = Path(spec).expanduser()
    if not str(spec).lower().endswith(INDEX_SUFFIX):
        raise IndexFileError(f"'{spec}' is not a gallery index: give a faiss index file ending in {INDEX_SUFFIX} "
                             "or a milvus: URI.")
    index = GalleryIndex.load(path)
    if dim is not None and index.dim != int(dim):
        raise IndexFileError(f"the gallery index '{spec}' holds {index.dim}-d features, these are {dim}-d; use an "
                             "index built with the same model.")
    made_with = index.info.get("model_sha256")
    if model_sha256 is not None and made_with != model_sha256:
        raise IndexFileError(f"the gallery index '{spec}' was built with other weights (sha256 "
                             f"{str(made_with)[:12]}...); use those weights, or rebuild the index.")
    return index
