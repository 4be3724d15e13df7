"""The images the page is sent, written so that no client can ever read one half-written.

Gradio copies returned arrays and files into its own cache without an atomic rename: two identical
concurrent searches can race and a client reads a zero-byte overlay. Instead, every image the demo
returns is a file it wrote itself, atomically (:func:`signal_core.utils.atomic.atomic_write`), under a
content-hash name, in a folder that is registered with gradio as a static path (served as is,
never copied). :class:`ServedFolder` is that folder for per-search images (the overlays): one
temporary folder per process, old files pruned, removed at exit.
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from signal_core.utils.atomic import atomic_write

log = logging.getLogger(__name__)
MAX_AGE_S = 3600.0  # per-search images older than this (unused for that long) are deleted
PRUNE_EVERY = 64  # writes between two prunes


class ServedFolder:
    """A per-process temporary folder of PNG images named by the SHA-256 of their pixels.

    Args:
        directory: the folder (default: a new ``signal-demo-*`` folder in the system temp folder,
            removed when the process exits).
        max_age_s: files not written or reused for this long are deleted by :meth:`prune`.
    """

    def __init__(self, directory: str | os.PathLike | None = None, max_age_s: float = MAX_AGE_S):
        if directory is None:
            directory = tempfile.mkdtemp(prefix="signal-demo-")
            atexit.register(shutil.rmtree, directory, True)
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self._writes = 0
        self._lock = threading.Lock()

    def save_png(self, image: np.ndarray) -> str:
        """Write an ``[H, W, 3]`` uint8 RGB image (once per content) and return its path."""
        rgb = np.ascontiguousarray(image, dtype=np.uint8)
        digest = hashlib.sha256(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest()[:32]
        path = self.directory / f"{digest}.png"
        if path.is_file() and path.stat().st_size > 0:
            os.utime(path)  # in use again: not pruned for another max_age_s
        else:
            ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            if not ok:
                raise OSError(f"could not encode a {rgb.shape} image as PNG")
            atomic_write(path, lambda tmp: Path(tmp).write_bytes(encoded.tobytes()), suffix=".png")
        with self._lock:
            self._writes += 1
            due = self._writes % PRUNE_EVERY == 0
        if due:
            self.prune()
        return str(path)

    def prune(self, now: float | None = None) -> int:
        """Delete the images (files directly in the folder) older than ``max_age_s``; returns how many."""
        limit = (time.time() if now is None else now) - self.max_age_s
        removed = 0
        for path in self.directory.glob("*.png"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except OSError:  # removed meanwhile, or not ours to remove
                continue
        return removed

    def subfolder(self, name: str) -> Path:
        """A folder inside this one (served with it, never pruned), created if needed."""
        path = self.directory / name
        path.mkdir(parents=True, exist_ok=True)
        return path
