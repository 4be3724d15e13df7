"""Small RGB | NIR | TIR side-by-side pictures of gallery entries, for the ranked result list.

Written once per entry as JPEG files in a folder (atomically), so the page is sent file paths
rather than arrays encoded anew on every search. An empty or truncated file (no JPEG end marker) is
not reused but written again. When the folder cannot be written (a read-only cache folder, a full
disk) the store moves to its fallback folder and keeps going.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from signal_core.utils.atomic import atomic_write

from .gallery import GalleryEntry, load_entry_images
from .images import ImageDecodeError

log = logging.getLogger(__name__)
THUMB_HEIGHT = 128
GAP = 2  # white columns between the three panels


def compose_triple(images, height: int = THUMB_HEIGHT) -> np.ndarray:
    """Three RGB arrays side by side, each scaled to ``height`` (missing ones as grey panels)."""
    panels = []
    for img in images:
        if img is None:
            panels.append(np.full((height, height // 2, 3), 96, dtype=np.uint8))
        else:
            width = max(1, round(img.shape[1] * height / img.shape[0]))
            panels.append(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
    gap = np.full((height, GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([part for panel in panels for part in (panel, gap)][:-1], axis=1)


def is_complete_jpeg(path: Path) -> bool:
    """True when ``path`` is a non-empty file ending with the JPEG end-of-image marker."""
    try:
        with open(path, "rb") as f:
            f.seek(-2, os.SEEK_END)
            return f.read(2) == b"\xff\xd9"
    except OSError:  # missing, or shorter than two bytes
        return False


def writable_folder(directory: Path) -> bool:
    """True when files can be created in ``directory`` (created if needed); tested by writing one."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
        return True
    except OSError:
        return False


class ThumbnailStore:
    """Thumbnails of one gallery under ``directory`` (one file per entry index).

    Args:
        directory: where thumbnails are kept (reused across restarts).
        fallback: where they go when ``directory`` cannot be written (default: a new temporary folder).
    """

    def __init__(self, directory: str | os.PathLike, fallback: str | os.PathLike | None = None):
        self.directory = Path(directory)
        self.fallback = None if fallback is None else Path(fallback)
        if not writable_folder(self.directory):
            self._use_fallback(f"{self.directory} cannot be written")

    @property
    def folders(self) -> list[Path]:
        """The folders thumbnails may be in (the page must be allowed to serve them)."""
        return [p for p in dict.fromkeys((self.directory, self.fallback)) if p is not None]

    def path(self, index: int, entry: GalleryEntry) -> str:
        """The thumbnail file of entry ``index``, created on first use."""
        path = self.directory / f"{index:07d}.jpg"
        if is_complete_jpeg(path):
            return str(path)
        try:
            picture = compose_triple(load_entry_images(entry))
        except ImageDecodeError:
            picture = np.full((THUMB_HEIGHT, THUMB_HEIGHT, 3), 96, dtype=np.uint8)
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise OSError(f"could not encode the thumbnail of {entry.name}")
        data = encoded.tobytes()
        try:
            return str(atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), suffix=".jpg"))
        except OSError as exc:
            if self.directory == self.fallback:
                raise
            self._use_fallback(f"writing {path} failed ({exc.__class__.__name__}: {exc})")
            path = self.directory / path.name
            return str(atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), suffix=".jpg"))

    def _use_fallback(self, reason: str) -> None:
        if self.fallback is None:
            self.fallback = Path(tempfile.mkdtemp(prefix="signal-demo-thumbs-"))
        self.fallback.mkdir(parents=True, exist_ok=True)
        log.warning("thumbnails: %s; using %s instead", reason, self.fallback)
        self.directory = self.fallback
