"""Per-epoch, per-rank seeds of the training randomness (augmentation in the loader workers).

Epoch ``e`` of rank ``r`` seeds its data-loader generator (from which each worker's seed is drawn)
and the process's torch generator from ``(seed, e, r)`` through numpy's ``SeedSequence``: every
rank draws different flips, crops and erasings, and a resumed epoch repeats exactly. (A plain sum
``seed + e + r`` would give rank 1 of epoch 1 the seed of rank 0 of epoch 2.)
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 63-bit seed that depends on (seed, epoch, rank) and on nothing else."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(rank)]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31 | int(state[1]) >> 1) & (2**63 - 1)


def seed_epoch(loader: DataLoader, seed: int, epoch: int, rank: int = 0) -> int:
    """Seed ``loader.generator`` (worker seeds) and torch's global generator (work done in the main
    process, e.g. with ``num_workers=0``) for ``epoch`` on ``rank``; returns the seed."""
    value = epoch_seed(seed, epoch, rank)
    if loader.generator is None:
        raise ValueError("the training loader needs its own torch.Generator to be seeded per epoch.")
    loader.generator.manual_seed(value)
    torch.manual_seed(value)
    return value
