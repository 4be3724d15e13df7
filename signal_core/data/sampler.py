"""P x K identity sampler (the authors' ``RandomIdentitySampler``), seeded per epoch, DDP-aware.

Per epoch (same algorithm as the authors'):

1. for each identity, shuffle its indices (identities with fewer than K images draw K with
   replacement) and cut them into chunks of K, dropping the remainder;
2. while at least P identities still have chunks: pick P distinct ones at random and take the
   next chunk of each -> one batch of P x K indices, identity by identity.

Differences from the authors: randomness comes from ``numpy.random.default_rng((seed, epoch))``
instead of globally seeded ``random`` / ``np.random``, so an epoch is reproducible on its own (exact
resume via :meth:`IdentitySampler.set_epoch`); ``len()`` is the exact number of indices yielded
(the authors' estimate, which can be larger, is :attr:`IdentitySampler.estimated_length`).

Distributed (as the authors' DDP sampler): ``batch_size`` is the GLOBAL batch; each rank gets
batches of ``batch_size // world_size`` (= P_local x K) and takes batches ``rank, rank + W, ...``
of the shared epoch plan, truncated so every rank has the same number of batches.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from .records import TripleRecord


class IdentitySampler(Sampler[int]):
    """Yield dataset indices forming batches of P distinct identities x K instances.

    Use with ``DataLoader(ds, batch_size=sampler.local_batch_size, sampler=sampler, drop_last=True)``
    and call ``sampler.set_epoch(epoch)`` before each epoch (otherwise every epoch repeats).

    Args:
        source: training records, or their pids (index i = dataset item i).
        batch_size: global batch size (P x K x world_size); the authors' ``IMS_PER_BATCH``.
        num_instances: K, images per identity in a batch (``NUM_INSTANCE``).
        seed: base seed; the epoch plan depends only on (seed, epoch).
        rank: this process's rank (0 when not distributed).
        world_size: number of processes (1 when not distributed).
    """

    def __init__(self, source: Sequence[TripleRecord] | Sequence[int], batch_size: int, num_instances: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if num_instances < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need num_instances >= 1 and 0 <= rank < world_size, got num_instances="
                             f"{num_instances}, rank={rank}, world_size={world_size}")
        step = world_size * num_instances
        if batch_size < step or batch_size % step:
            raise ValueError(f"batch_size {batch_size} must be a positive multiple of world_size x num_instances "
                             f"= {world_size} x {num_instances}; adjust the batch size or K")
        self.pids = np.asarray([r.pid if isinstance(r, TripleRecord) else int(r) for r in source], dtype=np.int64)
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.local_batch_size = batch_size // world_size
        self.num_pids_per_batch = self.local_batch_size // num_instances
        self.seed, self.rank, self.world_size = int(seed), rank, world_size
        self.epoch = 0
        index_of: dict[int, list[int]] = defaultdict(list)
        for idx, pid in enumerate(self.pids.tolist()):
            index_of[pid].append(idx)
        self.index_of = {pid: np.asarray(index_of[pid], dtype=np.int64) for pid in sorted(index_of)}
        if len(self.index_of) < self.num_pids_per_batch:
            raise ValueError(f"only {len(self.index_of)} identities, but a batch needs P = {self.num_pids_per_batch} "
                             f"distinct ones (batch {self.local_batch_size} / K {num_instances}); lower the batch size")
        self._cache: tuple[int, list[list[int]]] | None = None

    @property
    def estimated_length(self) -> int:
        """The authors' ``__len__``: sum over ids of max(n, K) rounded down to a multiple of K (/ world)."""
        k = self.num_instances
        total = sum(max(len(v), k) // k * k for v in self.index_of.values())
        return total // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan the next iteration yields (call before every epoch)."""
        self.epoch = int(epoch)

    def _global_batches(self, epoch: int) -> list[list[int]]:
        """All mini-batches (P_local x K indices each) of an epoch, before the per-rank split."""
        rng = np.random.default_rng((self.seed, epoch))
        k, p = self.num_instances, self.num_pids_per_batch
        chunks: dict[int, list[np.ndarray]] = {}
        for pid, idxs in self.index_of.items():
            if len(idxs) < k:
                idxs = rng.choice(idxs, size=k, replace=True)
            idxs = rng.permutation(idxs)
            n = len(idxs) // k
            chunks[pid] = list(idxs[: n * k].reshape(n, k))  # n chunks of [K]
        available = list(chunks)
        batches = []
        while len(available) >= p:
            picked = [available[i] for i in rng.choice(len(available), size=p, replace=False)]
            batches.append(np.concatenate([chunks[pid].pop(0) for pid in picked]).tolist())
            available = [pid for pid in available if chunks[pid]]
        return batches

    def epoch_batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches for ``epoch`` (default: the current one), each ``local_batch_size`` long."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cache is None or self._cache[0] != epoch:
            batches = self._global_batches(epoch)
            per_rank = len(batches) // self.world_size
            self._cache = (epoch, batches[self.rank::self.world_size][:per_rank])
        return self._cache[1]

    def __iter__(self) -> Iterator[int]:
        for batch in self.epoch_batches():
            yield from batch

    def __len__(self) -> int:
        """Exact number of indices this rank yields in the current epoch."""
        return len(self.epoch_batches()) * self.local_batch_size
