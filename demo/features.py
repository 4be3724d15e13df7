"""From decoded images to model inputs and retrieval features (batched), for queries and the gallery.

Both sides go through the same path: :func:`signal_core.data.images.decode_image` (8-bit RGB), the authors' test
transform (bilinear resize to the model's input size, normalise with mean / std 0.5), and a
missing modality's normalised input replaced by zeros, as in the missing-modality protocol
(:func:`signal_core.retrieval.split_features.drop_modalities`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from signal_core.data import build_transforms
from signal_core.modalities import MODALITIES, missing_code
from signal_core.retrieval.split_features import as_engine, batch_features, drop_modalities

from .gallery import Gallery, load_entry_images


class InputTransform:
    """uint8 RGB arrays -> normalised ``[3, H, W]`` tensors of the model's input size."""

    def __init__(self, image_size: tuple[int, int]):
        self.image_size = tuple(image_size)
        self._pipeline = build_transforms(self.image_size, train=False).pipeline

    def __call__(self, image: np.ndarray | None) -> torch.Tensor:
        """One image; None (a missing modality) gives zeros."""
        if image is None:
            return torch.zeros(3, *self.image_size)
        return self._pipeline(Image.fromarray(image)).as_subclass(torch.Tensor)


def missing_setting(images: Sequence[object | None]) -> str:
    """The missing-modality setting ("", "r", "nt", ...) of an (RGB, NIR, TIR) triple with Nones."""
    return missing_code(m for m, img in zip(MODALITIES, images) if img is None)


def triple_batch(images: Sequence[np.ndarray | None], transform: InputTransform) -> dict[str, torch.Tensor]:
    """A one-item batch ``{"rgb", "nir", "tir"}`` of ``[1, 3, H, W]``; missing modalities zeroed."""
    batch = {m: transform(img).unsqueeze(0) for m, img in zip(MODALITIES, images)}
    return drop_modalities(batch, missing_setting(images) or None)


class _GalleryImages(Dataset):
    """Decoded, transformed gallery triples (for a DataLoader)."""

    def __init__(self, gallery: Gallery, transform: InputTransform):
        self.entries, self.transform = gallery.entries, transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        images = load_entry_images(self.entries[index])
        return {m: self.transform(img) for m, img in zip(MODALITIES, images)} | {"index": index}


@torch.no_grad()
def extract_gallery_features(model, gallery: Gallery, device: torch.device | str = "cpu", batch_size: int = 32,
                             num_workers: int = 0, progress: bool = True, features_fn=None,
                             missing: str | None = None) -> torch.Tensor:
    """Retrieval features ``[N, F]`` (float32, CPU, not normalised) of every gallery entry, in order.

    Entries whose camera is known (and within the model's cameras) are encoded with it, the others
    with the mean camera embedding (:func:`signal_core.retrieval.split_features.batch_features`).
    ``features_fn``: a feature engine (signal_core.deploy.engines) instead of ``model.extract_features``;
    ``missing``: zero these modalities' inputs in every triple (a missing-modality setting, "t", "nt", ...).
    """
    engine = as_engine(model, features_fn)
    loader = DataLoader(_GalleryImages(gallery, InputTransform(model.cfg.image_size)), batch_size=batch_size,
                        num_workers=num_workers)
    feats = torch.empty(len(gallery), model.cfg.feature_dim)
    bar = tqdm(total=len(gallery), desc="gallery features", unit="triple", disable=not progress)
    for batch in loader:
        batch = drop_modalities(batch, missing or None)
        index = batch["index"]
        camids = [gallery.entries[i].camid for i in index.tolist()]
        feats[index] = batch_features(engine, *(batch[m] for m in MODALITIES), camids, model.num_cameras)
        bar.update(len(index))
    bar.close()
    return feats
