"""Optional packages: imported where needed, with an error that names the extra that installs them.

``pip install .`` installs the library's core (torch, open_clip, numpy, ...); the gallery index,
the drawings and the deployment runtimes are extras: ``pip install ".[index]"``, ``".[viz]"``,
``".[deploy]"`` from a checkout (or ``pip install -r requirements.txt``: everything).
"""
from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {  # import name -> (pip package, extra)
    "faiss": ("faiss-cpu", "index"),
    "cv2": ("opencv-python-headless", "viz"),
    "matplotlib": ("matplotlib", "viz"),
    "sklearn": ("scikit-learn", "viz"),
    "onnx": ("onnx", "deploy"),
    "onnxruntime": ("onnxruntime", "deploy"),
    "openvino": ("openvino", "deploy"),
    "ray": ("ray[data]", "scale"),
    "ray.data": ("ray[data]", "scale"),
    "pymilvus": ("pymilvus", "scale"),
    "milvus_lite": ("milvus-lite", "scale"),
}


class MissingExtraError(ModuleNotFoundError, ValueError):
    """An optional package is not installed; the message names the extra that installs it. A
    ModuleNotFoundError for the import machinery, and a ValueError, so a command line shows it as
    one ``error:`` line."""


def missing_message(name: str, needed_for: str) -> str:
    """One line: what needs the package, and the command that installs it."""
    package, extra = EXTRAS[name]
    return (f"{needed_for} needs the {package} package: pip install \".[{extra}]\" in the Signal checkout "
            f"(or pip install {package}).")


def require(name: str, needed_for: str) -> ModuleType:
    """Import the optional package ``name`` (a key of :data:`EXTRAS`).

    Raises:
        MissingExtraError: it is not installed; the message names the extra to install.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and not name.startswith(exc.name):  # something it imports is missing: not ours
            raise
        raise MissingExtraError(missing_message(name, needed_for), name=name) from None
