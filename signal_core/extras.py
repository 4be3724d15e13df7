"""Optional engines, imported only when used: a missing one is one clear error naming the extra to install."""
from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ValueError):
    """An optional dependency is not installed; the message names the pip extra that brings it."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError`.

    Args:
        module: the module to import, e.g. ``"ray.data"``.
        extra: the project's pip extra that installs it, e.g. ``"scale"``.
        what: what needs it, for the message, e.g. ``"--ray (distributed extraction)"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{what} needs {module.split('.')[0]}, which is not installed; install it with "
                                f"pip install \".[{extra}]\" (the '{extra}' extra of this project).") from None
