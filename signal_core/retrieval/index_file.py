"""One-file container for a gallery index: header, per-row metadata and the faiss index, checksummed.

Layout (all integers little-endian uint64)::

    b"SIGIDX01" | header length | header JSON | metadata length | metadata .npz | faiss index bytes
    | faiss index length | sha256 of every byte before the digest (32 bytes)

The faiss index is streamed to and from the file (``faiss.write_index`` / ``faiss.read_index`` with
Python callbacks), so a 3 GB index is never held twice in memory. The file is written atomically
(``signal_core.utils.atomic``) and its checksum is verified before anything in it is parsed. No pickle:
metadata is a plain ``.npz`` read with ``allow_pickle=False``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..utils.atomic import atomic_write
from ..utils.optional import require

faiss = require("faiss", "the gallery index file (signal_core.retrieval.index_file)")

MAGIC = b"SIGIDX01"
_U64 = struct.Struct("<Q")
_DIGEST = 32
_CHUNK = 16 << 20


class IndexFileError(ValueError):
    """A gallery index file is missing, truncated, corrupt or not an index file."""


@dataclass
class IndexFileContent:
    """What an index file holds.

    Attributes:
        header: JSON-serialisable settings (kind, dim, search parameters, format version).
        metadata: per-row arrays (numeric or unicode), possibly empty.
        index: the faiss index.
    """

    header: dict[str, Any]
    metadata: dict[str, np.ndarray]
    index: faiss.Index


class _HashingWriter:
    """File writer that feeds every byte to a sha256."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.sha = f, hashlib.sha256()

    def __call__(self, data: bytes) -> None:
        self.f.write(data)
        self.sha.update(data)


def write_index_file(path: str | os.PathLike, content: IndexFileContent) -> Path:
    """Write ``content`` to ``path`` atomically (a reader never sees a half-written file)."""
    header = json.dumps(content.header, sort_keys=True).encode()
    meta = io.BytesIO()
    np.savez(meta, **content.metadata)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            out = _HashingWriter(f)
            out(MAGIC)
            for block in (header, meta.getvalue()):
                out(_U64.pack(len(block)))
                out(block)
            start = f.tell()
            faiss.write_index(content.index, faiss.PyCallbackIOWriter(out))
            out(_U64.pack(f.tell() - start))
            f.write(out.sha.digest())
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def _verify(path: Path) -> None:
    """Check magic and checksum of the whole file before anything is parsed."""
    if not path.is_file():
        raise IndexFileError(f"gallery index file {path} does not exist; "
                             "build one with GalleryIndex.build(...).save(path)")
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size < len(MAGIC) + 3 * _U64.size + _DIGEST or f.read(len(MAGIC)) != MAGIC:
            raise IndexFileError(f"{path} is not a Signal gallery index file (bad magic or too short)")
        f.seek(0)
        sha, left = hashlib.sha256(), size - _DIGEST
        while left:
            chunk = f.read(min(_CHUNK, left))
            sha.update(chunk)
            left -= len(chunk)
        if f.read(_DIGEST) != sha.digest():
            raise IndexFileError(f"gallery index file {path} is corrupt (checksum mismatch); "
                                 "rebuild it or restore a good copy")


def _read_block(f: BinaryIO, path: Path, limit: int) -> bytes:
    (n,) = _U64.unpack(f.read(_U64.size))
    if n > limit:
        raise IndexFileError(f"gallery index file {path} is corrupt (block length {n} past the end of the file)")
    return f.read(n)


def read_index_file(path: str | os.PathLike) -> IndexFileContent:
    """Read and verify an index file written by ``write_index_file``.

    Raises:
        IndexFileError: the file is missing, not an index file, truncated or corrupt.
    """
    path = Path(path)
    _verify(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(len(MAGIC))
        header = json.loads(_read_block(f, path, size))
        meta_bytes = _read_block(f, path, size)
        with np.load(io.BytesIO(meta_bytes), allow_pickle=False) as npz:
            metadata = {key: npz[key] for key in npz.files}
        start = f.tell()
        f.seek(size - _DIGEST - _U64.size)
        (n_index,) = _U64.unpack(f.read(_U64.size))
        if start + n_index != size - _DIGEST - _U64.size:
            raise IndexFileError(f"gallery index file {path} is corrupt (inconsistent index length)")
        f.seek(start)
        left = [n_index]

        def read(n: int) -> bytes:
            data = f.read(min(n, left[0]))
            left[0] -= len(data)
            return data

        index = faiss.read_index(faiss.PyCallbackIOReader(read))
    return IndexFileContent(header=header, metadata=metadata, index=index)
