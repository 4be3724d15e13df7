"""The SHA-256 of a file, the one digest every checksum of the project uses."""
from __future__ import annotations

import hashlib
import os

CHUNK = 4 << 20  # bytes read at a time


def sha256_file(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
