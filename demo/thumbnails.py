"""Small RGB | NIR | TIR side-by-side pictures of gallery entries, for the ranked result list.

Written once per entry as JPEG files in a folder (atomically), so the page is sent file paths
rather than arrays encoded anew on every search.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from signal_core.atomic import atomic_write

from .gallery import GalleryEntry, load_entry_images
from .images import ImageDecodeError

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


class ThumbnailStore:
    """Thumbnails of one gallery under ``directory`` (one file per entry index)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def path(self, index: int, entry: GalleryEntry) -> str:
        """The thumbnail file of entry ``index``, created on first use."""
        path = self.directory / f"{index:07d}.jpg"
        if path.is_file():
            return str(path)
        try:
            picture = compose_triple(load_entry_images(entry))
        except ImageDecodeError:
            picture = np.full((THUMB_HEIGHT, THUMB_HEIGHT, 3), 96, dtype=np.uint8)
        bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)

        def write(tmp: str) -> None:
            if not cv2.imwrite(tmp, bgr, [cv2.IMWRITE_JPEG_QUALITY, 90]):
                raise OSError(f"could not write {tmp}")

        return str(atomic_write(path, write, suffix=".jpg"))
