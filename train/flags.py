"""Typed command-line flags shared by every ``python -m train.*`` command.

Each check runs while the flags are parsed, before any model or data is loaded, and a bad value
ends the command with one line that names the flag (``error: argument --batch-size: must be at
least 1, got 0``) and exit status 2:

* numbers: :func:`whole` and :func:`real` (a range; never NaN or infinity);
* ``--device``: :func:`device_flag` (a device torch knows and this machine has);
* outputs: :func:`output_file` (not a folder, in a writable place) and :func:`output_folder`
  (not a file, in a writable place). The same checks, as functions raising ``ValueError``, serve
  outputs named elsewhere (``train.output_dir`` of a config).
"""
from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

# most --threads / --num-workers: 4 per CPU core (more only thrash; 100000 makes libgomp abort the process)
MAX_PROCESSES = 4 * (os.cpu_count() or 1)


def _bounds(low, high) -> str:
    if high is None:
        return f"at least {low}"
    return f"from {low} to {high}" if low is not None else f"at most {high}"


def whole(low: int | None = 0, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number in [low, high] (either bound may be None)."""
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {_bounds(low, high)}, got {value}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in some messages
    return parse


def real(low: float | None = None, high: float | None = None) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in [low, high] (either bound may be None)."""
    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text[:40]!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {_bounds(low, high)}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


def check_device(text: str) -> str:
    """``text`` if it names a device torch knows and this machine has (cpu, cuda, cuda:N, mps).

    Raises:
        ValueError: an unknown device, or a GPU this machine does not have (what to use instead).
    """
    import torch

    try:
        dev = torch.device(text.strip())
    except (RuntimeError, ValueError):
        raise ValueError(f"{text[:40]!r} is not a device: use cpu, cuda or cuda:N.") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{text} asked for, but torch sees no CUDA GPU on this machine: use --device cpu.")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{text} asked for, but torch sees {count} GPU(s) (cuda:0 to cuda:{count - 1}).")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("mps asked for, but this machine has no Apple GPU torch can use: use --device cpu.")
    elif dev.type != "cpu":
        raise ValueError(f"device type {dev.type!r} is not supported by these commands: use cpu or cuda.")
    return text.strip()


def default_device() -> str:
    """cuda when torch sees a GPU, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing parent (the folder a new file or folder will be created in)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable_place(folder: Path, path: Path, what: str) -> None:
    """``folder`` (where ``path`` goes) is, or can be created in, a folder this process can write."""
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise ValueError(f"{what} '{path}': '{base}' is a file, not a folder.")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{what} '{path}': cannot write in '{base}' (read-only or no permission); "
                         "choose another place.")


def check_output_file(path: str | os.PathLike, what: str = "the output") -> Path:
    """``path`` as a file to (over)write: not an existing folder, in a place this process can write.

    Raises:
        ValueError: the message names ``what`` (e.g. ``--out``) and what to do.
    """
    path = Path(path).expanduser()
    if not str(path).strip() or path.is_dir():
        raise ValueError(f"{what} '{path}' is a folder: give a file name, e.g. {path / 'results.json'}.")
    if path.exists() and not path.is_file():  # a device or FIFO (/dev/null, /dev/stdout): written into
        if not os.access(path, os.W_OK):
            raise ValueError(f"{what} '{path}' cannot be written (no permission).")
        return path
    _check_writable_place(path.parent, path, what)
    return path


def check_output_folder(path: str | os.PathLike, what: str = "the output folder") -> Path:
    """``path`` as a folder to write into: not an existing file, in a place this process can write.

    Raises:
        ValueError: the message names ``what`` (e.g. ``--out``) and what to do.
    """
    path = Path(path).expanduser()
    if not str(path).strip():
        raise ValueError(f"{what} is empty: give a folder.")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} '{path}' is a file: give a folder (it is created if needed).")
    _check_writable_place(path, path, what)
    return path


def _argparse_type(check: Callable[[str], object], name: str, is_output: str | None = None) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
        return text

    parse.__name__ = name
    parse.is_output = is_output  # type: ignore[attr-defined]  # "file" | "folder": train.cli.CommandParser
    # refuses an output that names an input
    return parse


device_flag = _argparse_type(check_device, "device")  # argparse type of --device
output_file = _argparse_type(lambda t: check_output_file(t, "file"), "output file", "file")  # --out FILE, --html
output_folder = _argparse_type(lambda t: check_output_folder(t, "folder"), "output folder", "folder")  # --out DIR
