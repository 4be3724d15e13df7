"""Atomic file writes: a reader (or a crash) never sees a half-written checkpoint, cache or report.

The content goes to a temporary file in the destination folder, then ``os.replace`` swaps it in
(atomic on POSIX and Windows within one file system). On any error the temporary file is removed
and the previous file, if any, is left untouched.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; a written file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: PathLike, payload: Any, indent: int = 2, sort_keys: bool = False) -> Path:
    """Write ``payload`` as JSON (newline-terminated), atomically."""
    text = json.dumps(payload, indent=indent, sort_keys=sort_keys) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
