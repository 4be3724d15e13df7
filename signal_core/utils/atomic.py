"""Atomic file writes: a reader (or a crash) never sees a half-written checkpoint, cache or report.

The content goes to a temporary file in the destination folder, then ``os.replace`` swaps it in
(atomic on POSIX and Windows within one file system). On any error the temporary file is removed
and the previous file, if any, is left untouched. A full or read-only disk is always an ``OSError``
naming the destination, not the temporary file (writers such as ``torch.save`` and safetensors
report a full disk as their own error types: a failure with under 1 MiB free is one). A device or
FIFO (``--out /dev/null``, ``/dev/stdout``) is written into, never replaced by a regular file.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike
FULL_BELOW = 1 << 20  # bytes: a writer failing on a file system with less free space than this hit a full disk


def _default_file_mode() -> int:
    """0666 less the process umask: the mode ``open()`` gives a new file (read once, at import)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


def atomic_write(path: PathLike, write: Callable[[str], Any], suffix: str = ".tmp") -> Path:
    """Create ``path`` by calling ``write(temporary_path)`` and renaming the result into place.

    Args:
        path: the destination; its folder is created if needed.
        write: writes the whole content to the path it is given.
        suffix: suffix of the temporary file (writers that pick the format by extension, such as
            ``cv2.imwrite``, need the real one).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    if _is_special(path):
        return _write_through(path, write, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; a written file gets the usual mode
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise named_os_error(exc, path) from exc
    except Exception as exc:  # torch.save and safetensors report a full disk as RuntimeError / SafetensorError
        full = _nearly_full(path.parent)  # asked before the temporary file is removed and frees its space
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _is_special(path: Path) -> bool:
    """An existing device, FIFO or socket (``/dev/null``, ``/dev/stdout``): written into, never replaced."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _write_through(path: Path, write: Callable[[str], Any], suffix: str) -> Path:
    """The content, written to a temporary file first, copied into the special file ``path``."""
    with tempfile.TemporaryDirectory(prefix="signal-write-") as folder:
        tmp = Path(folder) / f"content{suffix}"
        write(str(tmp))
        try:
            with open(tmp, "rb") as source, open(path, "wb") as target:
                shutil.copyfileobj(source, target)
        except OSError as exc:
            raise named_os_error(exc, path) from exc
    return path


def _nearly_full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has less than :data:`FULL_BELOW` bytes free."""
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW
    except OSError:
        return False


def named_os_error(exc: OSError, path: PathLike) -> OSError:
    """``exc`` naming ``path`` (a failed write names no file, or the temporary one), same errno and class."""
    if exc.errno is None or exc.strerror is None:
        return exc
    return OSError(exc.errno, exc.strerror, str(path))


def write_new_file(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to a new file ``path`` (never through an existing file or link); an OSError names ``path``."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise named_os_error(exc, path) from exc
    return path


def write_json(path: PathLike, payload: Any, indent: int = 2, sort_keys: bool = False) -> Path:
    """Write ``payload`` as JSON (newline-terminated), atomically."""
    text = json.dumps(payload, indent=indent, sort_keys=sort_keys) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
