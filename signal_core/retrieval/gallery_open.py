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

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import label_from, label_or_none
from .index import GalleryIndex, IndexFileError
from .milvus_index import MilvusGallery, is_milvus_uri

SavedIndex = GalleryIndex | MilvusGallery
INDEX_SUFFIX = ".sgi"  # a faiss gallery index file
ROW_FIELDS = ("pid", "camid", "sceneid")
_DIGEST_ROWS = 65_536  # feature rows hashed at a time
log = logging.getLogger(__name__)


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


def gallery_digest(features: np.ndarray, rows: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of a gallery's content: every row's name, paths and labels, then its features (float32), in order.
    Two galleries of the same size and weights differ here (recorded as ``info["gallery_sha256"]``)."""
    digest = hashlib.sha256(f"{len(rows)} x {features.shape[1]}\n".encode())
    for row in rows:  # json escapes a name that is not UTF-8 (surrogates): always encodable
        digest.update(json.dumps([str(row.get("name", "")), list(row.get("paths", [])),
                                  *(row.get(key) for key in ROW_FIELDS)]).encode() + b"\n")
    for start in range(0, len(features), _DIGEST_ROWS):
        digest.update(np.ascontiguousarray(features[start:start + _DIGEST_ROWS], dtype=np.float32).tobytes())
    return digest.hexdigest()


def write_index(spec: str | os.PathLike, features: np.ndarray, rows: Sequence[Mapping[str, Any]],
                info: Mapping[str, Any], kind: str = "auto") -> SavedIndex:
    """Index ``features`` ([N, D], L2-normalised) with their ``rows`` into ``spec`` and save it.

    Both kinds record ``gallery_sha256`` (:func:`gallery_digest`) in their ``info``, and ``spec`` ends up
    holding this gallery: a ``.sgi`` file is written atomically (replaced if present); a Milvus collection
    that already holds this very gallery (same digest, weights and precision) is kept, one holding another
    gallery is replaced (the new one is built beside it and renamed into place, with a warning).

    Args:
        spec: a ``.sgi`` file or a ``milvus:`` URI.
        info: ``{"model_sha256", "precision", ...}`` kept with the index.
        kind: the faiss kind of a ``.sgi`` file (exact | ivfpq | auto); a Milvus collection is FLAT.

    Raises:
        MilvusGalleryError: the collection is not a Signal gallery, or Milvus cannot be reached.
        ValueError: ``spec`` is neither.
    """
    metadata = rows_metadata(rows)
    info = {**info, "gallery_sha256": gallery_digest(features, rows)}
    if is_milvus_uri(spec):
        held = MilvusGallery.find(str(spec))
        if held is not None and held.dim == features.shape[1] and all(held.info.get(k) == v for k, v in info.items()):
            return held  # this very gallery: kept
        if held is not None:
            log.warning("%s held another gallery (%d rows, gallery sha256 %s...): replaced by these %d rows.", spec,
                        len(held), str(held.info.get("gallery_sha256"))[:12], len(features))
            held.close()
        return MilvusGallery.build(str(spec), features, metadata, info=info, overwrite=held is not None)
    if not str(spec).lower().endswith(INDEX_SUFFIX):
        raise ValueError(f"--index '{spec}': give a faiss index file ending in {INDEX_SUFFIX} or a milvus: URI.")
    index = GalleryIndex.build(features, kind=kind, metadata=metadata)
    index.info = info
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
