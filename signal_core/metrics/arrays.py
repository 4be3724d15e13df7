"""Input conversion and sparse-row helpers shared by the rank metrics and re-ranking."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

# Working-set budget of one query chunk (sorted values, int64 keys, temporaries).
CHUNK_BUDGET_BYTES = 64 * 2**20
BYTES_PER_CELL = 32


def to_numpy(x: Any, name: str) -> np.ndarray:
    """``x`` (array, tensor of any device / dtype, sequence) as a numpy array; ``name`` for errors."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:  # no numpy equivalent; float32 holds it exactly
            x = x.float()
        x = x.numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} cannot be converted to a numpy array: {exc}") from exc


def as_labels(x: Any, name: str, length: int) -> np.ndarray:
    """``x`` as a 1-D label array of ``length`` entries (ValueError otherwise)."""
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != length:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the distance matrix implies {length}")
    return arr


def encode_pair(q: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map query and gallery labels to shared int32 codes (equal label <=> equal code)."""
    _, inverse = np.unique(np.concatenate([q, g]), return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int32, copy=False)
    return inverse[: len(q)], inverse[len(q):]


def row_starts(rows: np.ndarray, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """For row-sorted entry row ids: (count per row, index of each row's first entry)."""
    counts = np.bincount(rows, minlength=num_rows)
    starts = np.cumsum(counts) - counts
    return counts, starts


def auto_chunk_size(num_g: int) -> int:
    """Queries per chunk so that a chunk of ``num_g`` columns stays within the working-set budget."""
    return max(1, CHUNK_BUDGET_BYTES // (max(num_g, 1) * BYTES_PER_CELL))
