"""Typed command-line flags shared by every ``python -m train.*`` command.

Each check runs while the flags are parsed, before any model or data is loaded, and a bad value
ends the command with one line that names the flag (``error: argument --batch-size: must be at
least 1, got 0``) and exit status 2:

* numbers: :func:`whole` and :func:`real` (a range; never NaN or infinity);
* ``--device``: :func:`device_flag` (a device torch knows and this machine has);
* ``--threads``: :func:`threads` (at most the CPU cores this process may use);
* outputs: :func:`output_file` (not a folder, in a writable place), :func:`output_folder`
  (not a file, in a writable place), :func:`feature_folder_output` and :func:`index_output`; never
  ``-`` (no command writes to standard output: ``/dev/stdout`` does), never a name longer than the
  file system takes. The same checks, as functions raising ``ValueError``, serve outputs named
  elsewhere (``train.output_dir`` of a config);
* inputs: :func:`input_path` and :func:`index_input` check nothing themselves; with the outputs they
  declare what a command reads and writes, so that ``train.cli.CommandParser`` refuses an output
  inside an input (``train/output_paths.py``).
"""
from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from signal_core.utils.messages import shown
from signal_core.weights_source import is_hub_name

# most --num-workers: 4 per CPU core (more only thrash; 100000 makes libgomp abort the process)
MAX_PROCESSES = 4 * (os.cpu_count() or 1)
# the CPU cores this process may run on (a container's or taskset's share, not the host's count)
CPU_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
NAME_MAX, PATH_MAX = 255, 4096  # bytes of one name and of a whole path (Linux, macOS: 255 and 1024)


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


def threads(text: str) -> int:
    """An argparse ``type`` (``--threads``): a whole number from 1 to the CPU cores of this machine."""
    value = whole(1)(text)
    if value > CPU_CORES:
        raise argparse.ArgumentTypeError(f"{value} threads asked for, but this machine has {CPU_CORES} CPU core(s): "
                                         f"give 1 to {CPU_CORES} (more threads than cores only slow the model down)")
    return value


threads.__name__ = "whole number"
THREADS_HELP = f"at most the CPU cores of this machine ({CPU_CORES})"


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


def check_name(path: str | os.PathLike, what: str = "the output", folder: bool = False) -> Path:
    """``path`` as an output's name: not ``-`` (a file named "-", not standard output), no part longer than
    :data:`NAME_MAX` bytes, the whole (absolute) path shorter than :data:`PATH_MAX` bytes.

    Raises:
        ValueError: the message names ``what``, the path (shortened) and what to do.
    """
    text = os.fspath(path)
    if text.strip() == "-":
        give = "a folder" if folder else "a file name (/dev/stdout writes to the terminal)"
        raise ValueError(f"{what} '-': this command does not write to standard output: give {give}.")
    longest = max(Path(text).parts or ("",), key=lambda part: len(os.fsencode(part)))
    if len(os.fsencode(longest)) > NAME_MAX:
        raise ValueError(f"{what} '{shown(text)}': the name '{shown(longest, 40)}' is {len(os.fsencode(longest))} "
                         f"bytes long, more than the {NAME_MAX} a file system takes: choose a shorter name.")
    size = len(os.fsencode(os.path.abspath(os.path.expanduser(text))))
    if size >= PATH_MAX:
        raise ValueError(f"{what} '{shown(text)}': the path is {size} bytes long, more than the {PATH_MAX - 1} a "
                         "file system takes: choose a shorter path.")
    return Path(text).expanduser()


def check_output_file(path: str | os.PathLike, what: str = "the output") -> Path:
    """``path`` as a file to (over)write: not an existing folder, in a place this process can write.

    Raises:
        ValueError: the message names ``what`` (e.g. ``--out``) and what to do.
    """
    path = check_name(path, what)
    if not str(path).strip() or path.is_dir():
        raise ValueError(f"{what} '{path}' is a folder: give the path of a file to write.")
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
    if not os.fspath(path).strip():
        raise ValueError(f"{what} is empty: give a folder.")
    path = check_name(path, what, folder=True)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} '{path}' is a file: give a folder (it is created if needed).")
    _check_writable_place(path, path, what)
    return path


def index_path(spec: str) -> str | None:
    """The local path a saved-index spec names: ``FILE.sgi``, the file of ``milvus:FILE.db[#name]``; None for a
    Milvus server (``milvus://host:port``) and anything else (``exact``, ``auto``)."""
    from signal_core.retrieval.gallery_open import INDEX_SUFFIX
    from signal_core.retrieval.milvus_index import is_milvus_uri

    if is_milvus_uri(spec):
        rest = spec[len("milvus:"):].partition("#")[0]
        return None if rest.startswith("//") or not rest.strip() else rest
    return spec if spec.lower().endswith(INDEX_SUFFIX) else None


def check_index_output(spec: str, what: str = "the index") -> str:
    """``spec`` as a saved index to write: a ``.sgi`` file as :func:`check_output_file`; a Milvus Lite file's
    name and folder as any output's (the folder is created when the index is written); a server: unchecked."""
    path = index_path(spec)
    if path is not None and spec.lower().endswith(".sgi"):
        check_output_file(path, what)
    elif path is not None:
        path = check_name(path, what)
        _check_writable_place(path.parent, path, what)
    elif not spec.lower().startswith("milvus:"):
        check_name(spec, what)  # "-"; what else it is, the command says (FILE.sgi, milvus:FILE.db, ...)
    return spec


def _argparse_type(check: Callable[[str], object], name: str, writes: str | None = None, reads: bool = False,
                   local: Callable[[str], str | None] = lambda text: text) -> Callable[[str], str]:
    """An argparse ``type`` that runs ``check`` and declares the role of its flag for
    ``train.output_paths``: ``writes`` (the output's kind: file, folder, features, index) or ``reads``;
    ``local`` maps the flag's text to the local path it names (None: none)."""
    def parse(text: str) -> str:
        text = os.path.expanduser(text) if text.startswith("~") else text  # as a shell would (a quoted '~' too)
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
        except OSError as exc:  # whatever the checks above did not foresee: still one line
            raise argparse.ArgumentTypeError(f"'{shown(text)}': {exc.strerror or exc}") from None
        return text

    parse.__name__ = name
    parse.writes, parse.reads, parse.local = writes, reads, local  # type: ignore[attr-defined]
    return parse


device_flag = _argparse_type(check_device, "device")  # argparse type of --device
output_file = _argparse_type(lambda t: check_output_file(t, "file"), "output file", "file")  # --out FILE, --html
output_folder = _argparse_type(lambda t: check_output_folder(t, "folder"), "output folder", "folder")  # --out DIR
# train.extract --out: a feature folder, written (or resumed) in place
feature_folder_output = _argparse_type(lambda t: check_output_folder(t, "folder"), "output folder", "features")
index_output = _argparse_type(lambda t: check_index_output(t, "index"), "index", "index", local=index_path)
input_path = _argparse_type(lambda t: None, "path", reads=True)  # a file or folder the command reads
# --weights: a file or Hub-style folder it reads, or a Hub name (no local path: signal_core.weights_source)
weights_input = _argparse_type(lambda t: None, "weights", reads=True, local=lambda t: None if is_hub_name(t) else t)
index_input = _argparse_type(lambda t: None, "index", reads=True, local=index_path)  # a saved index it reads
