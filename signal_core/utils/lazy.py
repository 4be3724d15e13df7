"""Package exports imported on first use (PEP 562), so that a package can name names whose modules
need optional packages (faiss, onnxruntime, ...) without importing them."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[list[str], Callable, Callable]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package`` whose public name N lives in its
    module ``exports[N]``: ``__all__, __getattr__, __dir__ = lazy_exports(__name__, {...})``."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{exports[name]}", package), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return sorted(exports), __getattr__, __dir__
