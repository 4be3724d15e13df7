"""Small process and file helpers.

    atomic     atomic file writes (atomic_write, write_json)
    hashing    the SHA-256 of a file (sha256_file)
    allocator  keep_freed_memory: glibc keeps freed memory for faster CPU inference
    optional   optional packages, with an error that names the extra installing them
    lazy       package exports imported on first use
    messages   what a user is told: their input shortened, an error's reason without a server path
"""
from __future__ import annotations

from .lazy import lazy_exports

_EXPORTS = {  # public name -> module (imported on first use: optional packages stay optional)
    "atomic_write": "atomic",
    "write_json": "atomic",
    "sha256_file": "hashing",
    "keep_freed_memory": "allocator",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
