"""Torch ``Dataset`` over :class:`TripleRecord` lists (one item = one RGB / NIR / TIR object)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .records import TripleRecord
from .transforms import ImageTriple, TensorTriple, load_triple

TripleTransformFn = Callable[[ImageTriple], TensorTriple]


def _to_tensor(images: ImageTriple) -> TensorTriple:
    """Untransformed fallback: uint8 PIL -> float ``[3, H, W]`` in [0, 1] (sizes may differ)."""
    return tuple(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
                 for img in images)  # type: ignore[return-value]


class TripleDataset(Dataset):
    """Loads and transforms the three modality images of each record.

    Items are dicts (the default ``collate_fn`` stacks them into a batch dict)::

        {"rgb": [3, H, W], "nir": [3, H, W], "tir": [3, H, W],   # float tensors
         "pid": int, "camid": int, "sceneid": int, "index": int, "path": str (RGB path)}

    ``pid`` is whatever the record holds: relabelled ``0..C-1`` for ``ReIDDataset.train``,
    raw ids for query / gallery.

    Args:
        records: the records to serve (e.g. ``ds.train`` or ``ds.query + ds.gallery``).
        transform: maps the three PIL images to three tensors, e.g.
            ``build_transforms(cfg.image_size, train=True)``; None = plain [0, 1] tensors, no resize.
    """

    def __init__(self, records: Sequence[TripleRecord], transform: TripleTransformFn | None = None) -> None:
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    @property
    def pids(self) -> list[int]:
        """pid of every item, in index order (input for :class:`IdentitySampler`)."""
        return [r.pid for r in self.records]

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        images = load_triple(record.paths)
        rgb, nir, tir = (self.transform or _to_tensor)(images)
        return {"rgb": rgb, "nir": nir, "tir": tir, "pid": record.pid, "camid": record.camid,
                "sceneid": record.sceneid, "index": index, "path": record.paths[0]}
