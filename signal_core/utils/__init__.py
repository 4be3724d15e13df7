"""Small process and file helpers.

    atomic     atomic file writes (atomic_write, write_json)
    hashing    the SHA-256 of a file (sha256_file)
    allocator  keep_freed_memory: glibc keeps freed memory for faster CPU inference
    optional   optional packages, with an error that names the extra installing them
    messages   what a user is told: their input shortened, an error's reason without a server path
"""
from __future__ import annotations

import importlib

_EXPORTS = {  # public name -> module (imported on first use: optional packages stay optional)
    "atomic_write": "atomic",
    "write_json": "atomic",
    "sha256_file": "hashing",
    "keep_freed_memory": "allocator",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
