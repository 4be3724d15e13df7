"""The demo's gallery: which triples it searches, read from a "triples folder" or a dataset folder.

A triples folder holds three modality folders with the same file names in each::

    DIR/RGB/000001_cam1_000.jpg   DIR/NI/000001_cam1_000.jpg   DIR/TI/000001_cam1_000.jpg

Names of the form ``PPPPPP_camK_*.ext`` (the RGBNT201 convention) give identity PPPPPP and
camera K (0-based K - 1); other names are accepted with identity and camera unknown
(:data:`signal_core.data.UNKNOWN`, as everywhere in the project; the library reads the folder). A dataset
folder (RGBNT201 / RGBNT100 / MSVR310 layout) is read with :func:`signal_core.data.load_dataset`
and its test gallery split is used.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from signal_core import data
from signal_core.data import UNKNOWN
from signal_core.data.images import ImageDecodeError, decode_image
from signal_core.modalities import FOLDERS


class GalleryError(ValueError):
    """The gallery folder cannot be read; the message says what is wrong and what layout is expected."""


@dataclass(frozen=True)
class GalleryEntry:
    """One gallery object: its (RGB, NIR, TIR) image paths, identity and 0-based camera
    (:data:`~signal_core.data.UNKNOWN` when not known).

    Three identical paths mean one RGBNT100 image holding the three modalities side by side.
    """

    paths: tuple[str, str, str]
    pid: int = UNKNOWN
    camid: int = UNKNOWN

    @property
    def name(self) -> str:
        return Path(self.paths[0]).name


@dataclass
class Gallery:
    """The gallery entries, in a fixed order (rows of the feature matrix), and where they came from."""

    entries: list[GalleryEntry]
    source: str  # e.g. "triples folder /path" or "RGBNT201 test gallery /path"

    def __len__(self) -> int:
        return len(self.entries)

    def files(self) -> list[str]:
        """Every distinct file the gallery reads, in entry order (for the feature-cache key)."""
        return list(dict.fromkeys(p for e in self.entries for p in e.paths))


def read_triples_folder(root: str | Path) -> list[GalleryEntry]:
    """Entries of a triples folder, sorted by file name (read by :func:`signal_core.data.read_triples_folder`).

    Raises:
        GalleryError: a modality folder is missing, the RGB folder has no images, or a file is
            missing in NI or TI (the message names it).
    """
    try:
        records = data.read_triples_folder(root)
    except data.DatasetError as exc:
        raise GalleryError(str(exc)) from None
    return [GalleryEntry(tuple(r.paths), r.pid, r.camid) for r in records]


def load_gallery(root: str | Path, dataset: str | None = None) -> Gallery:
    """Read a gallery: a triples folder, or the test gallery of a dataset folder (``dataset`` names it).

    Raises:
        GalleryError: the folder is missing, or neither a triples folder nor a readable dataset.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise GalleryError(f"gallery folder {root} does not exist.")
    if data.is_triples_folder(root):
        return Gallery(read_triples_folder(root), f"triples folder {root}")
    if not dataset:
        raise GalleryError(f"{root} is not a triples folder (sub-folders {', '.join(FOLDERS)}); for a dataset "
                           f"folder pass its name with --dataset ({'|'.join(data.DATASETS)}).")
    try:
        ds = data.load_dataset(dataset, root)
    except data.DatasetError as exc:
        raise GalleryError(str(exc)) from None
    entries = [GalleryEntry(tuple(r.paths), r.pid, r.camid) for r in ds.gallery]
    if not entries:
        raise GalleryError(f"the {ds.name} gallery split in {root} is empty.")
    return Gallery(entries, f"{ds.name} test gallery {root}")


def load_entry_images(entry: GalleryEntry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (RGB, NIR, TIR) images of an entry as uint8 RGB arrays (RGBNT100 files are split in three).

    Raises:
        ImageDecodeError: a file cannot be read.
    """
    if entry.paths[0] == entry.paths[1] == entry.paths[2]:
        whole = decode_image(entry.paths[0], max_side=1 << 16)
        try:  # the library's rule: three 256-pixel panels side by side
            panels = data.split_panels(Image.fromarray(whole), entry.paths[0])
        except data.DatasetError as exc:
            raise ImageDecodeError(str(exc)) from None
        return tuple(np.asarray(p) for p in panels)  # type: ignore[return-value]
    return tuple(decode_image(p) for p in entry.paths)  # type: ignore[return-value]


def camera_tensor(camids: Sequence[int], num_cameras: int) -> torch.Tensor | None:
    """Camera ids for the model, or None (mean camera embedding) when any is unknown or out of range."""
    if not num_cameras or any(not 0 <= c < num_cameras for c in camids):
        return None
    return torch.tensor(list(camids), dtype=torch.long)
