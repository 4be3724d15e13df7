"""ReID ranking metrics: CMC, mAP and mINP of a query x gallery distance matrix.

The evaluation protocols follow the Signal authors' evaluation code exactly (same
filtering, same CMC/mAP definitions), but are computed without a per-query Python
loop, chunk by chunk over the queries so that memory stays bounded:

* **camera protocol** (RGBNT201, RGBNT100; ``q_sceneids is None``): for each query, the
  gallery items with the same identity *and* the same camera are discarded.
* **scene protocol** (MSVR310; scene ids given): the gallery items with the same
  identity *and* the same scene (any camera) are discarded.

Ranking is by ascending distance.  Ties are broken by gallery index (a *stable*
sort), so the result is deterministic and equals ranking with
``np.argsort(distmat, axis=1, kind="stable")``.  The authors use ``np.argsort``'s
default (non-stable) sort, whose order among exactly equal distances is unspecified,
so where a same-identity item ties with another item their numbers can differ from
ours.  Exact ties are not rare with float32 distances (about 2**24 values per octave:
a row of 20,000 distances in [0.5, 1.5] typically has a few), but they move mAP only
at the 1e-10 level in practice; without ties both rankings are identical.

Only the ranks of the same-identity gallery items are needed (see
:mod:`signal_core.metrics.sorting`).  Unlike the authors' code nothing is printed and no
file is written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .arrays import as_labels, auto_chunk_size, encode_pair, row_starts, to_numpy
from .sorting import match_ranks


@dataclass(frozen=True, eq=False)
class RankResult:
    """Ranking metrics over the queries that have at least one valid gallery match.

    mAP, mINP and cmc are fractions in [0, 1]; ``cmc[k - 1]`` is the rank-k accuracy.
    """

    mAP: float
    mINP: float
    cmc: np.ndarray
    num_valid_queries: int

    def rank(self, k: int) -> float:
        """Rank-k accuracy as a fraction.

        When ``k`` exceeds ``len(cmc)`` the value is only known if the curve already
        reached 1 (it is monotone); otherwise NaN is returned.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if k <= len(self.cmc):
            return float(self.cmc[k - 1])
        last = float(self.cmc[-1])
        return last if last >= 1.0 else float("nan")

    def as_percent_dict(self) -> dict[str, float]:
        """``{"mAP", "mINP", "R1", "R5", "R10"}`` in percent."""
        return {
            "mAP": 100.0 * self.mAP,
            "mINP": 100.0 * self.mINP,
            "R1": 100.0 * self.rank(1),
            "R5": 100.0 * self.rank(5),
            "R10": 100.0 * self.rank(10),
        }


@dataclass(frozen=True)
class _Labels:
    """Shared integer codes of the identities and of the exclusion labels (camera or scene)."""

    q_pid: np.ndarray  # [Q] int32
    g_pid: np.ndarray  # [G] int32
    q_excl: np.ndarray  # [Q] int32
    g_excl: np.ndarray  # [G] int32


@dataclass
class _Totals:
    """Running sums over the valid queries of the chunks seen so far."""

    first_hist: np.ndarray  # [max_rank] queries whose first match is at rank k+1
    ap_sum: float = 0.0
    inp_sum: float = 0.0
    num_valid: int = 0


def evaluate_rank(
    distmat: np.ndarray | torch.Tensor,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    q_sceneids: Any = None,
    g_sceneids: Any = None,
    max_rank: int = 50,
    chunk_size: int | None = None,
) -> RankResult:
    """CMC, mAP and mINP of a query x gallery distance matrix (smaller = more similar).

    Args:
        distmat: ``[Q, G]`` distances (numpy array or tensor; integer or floating point).
            ``+inf``/``-inf`` are allowed, NaN is rejected.
        q_pids, g_pids: identity labels, ``[Q]`` and ``[G]`` (any comparable dtype).
        q_camids, g_camids: camera labels, ``[Q]`` and ``[G]``.
        q_sceneids, g_sceneids: scene labels.  If given (both), the scene protocol of
            MSVR310 is used (drop same id + same scene); otherwise the camera protocol
            (drop same id + same camera).
        max_rank: length of the CMC curve; reduced to ``G`` if the gallery is smaller,
            like the authors' code.
        chunk_size: queries processed at a time; ``None`` picks it from a ~64 MiB
            working-set budget.  Results do not depend on it.

    Returns:
        :class:`RankResult`.  Queries without any valid gallery match are skipped.
        ``mINP`` is the mean inverse negative penalty (Ye et al. 2021): per query,
        ``#relevant / rank of the hardest (last) relevant match``.

    Raises:
        ValueError: inconsistent shapes, NaN distances, or no query with a valid match.
    """
    dist = _check_distmat(distmat, max_rank, chunk_size)
    num_q, num_g = dist.shape
    labels = _encode_labels(num_q, num_g, q_pids, g_pids, q_camids, g_camids, q_sceneids, g_sceneids)
    max_rank = int(min(max_rank, num_g))
    step = int(chunk_size) if chunk_size is not None else auto_chunk_size(num_g)

    # Gallery grouped by identity: the same-identity items of a query are found without
    # scanning the gallery.
    num_codes = int(max(labels.q_pid.max(), labels.g_pid.max())) + 1
    g_by_pid = np.argsort(labels.g_pid, kind="stable")
    pid_count, pid_start = row_starts(labels.g_pid, num_codes)

    totals = _Totals(first_hist=np.zeros(max_rank, dtype=np.int64))
    for start in range(0, num_q, step):
        block = dist[start:start + step]
        if dist.dtype.kind == "f":
            _reject_nan(block, start)
        rows, cols, ranks0 = _same_identity_ranks(block, labels.q_pid[start:start + step], g_by_pid,
                                                  pid_count, pid_start)
        removed = labels.g_excl[cols] == labels.q_excl[start + rows]
        _accumulate(totals, rows, ranks0, removed, len(block), max_rank)

    if totals.num_valid == 0:
        protocol = "scene" if q_sceneids is not None else "camera"
        raise ValueError(f"no query has a valid match in the gallery ({protocol} protocol: same-identity items from "
                         f"the same {protocol} are excluded); check the query/gallery split and labels")

    cmc = np.cumsum(totals.first_hist).astype(np.float64) / totals.num_valid
    cmc.setflags(write=False)
    return RankResult(mAP=totals.ap_sum / totals.num_valid, mINP=totals.inp_sum / totals.num_valid, cmc=cmc,
                      num_valid_queries=totals.num_valid)


def _check_distmat(distmat: Any, max_rank: Any, chunk_size: Any) -> np.ndarray:
    """The distance matrix as a 2-D real numpy array, after checking it and the integer options."""
    dist = to_numpy(distmat, "distmat")
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D [num_query, num_gallery], got shape {dist.shape}")
    if dist.dtype.kind not in "fiu":
        raise ValueError(f"distmat must hold real numbers, got dtype {dist.dtype}")
    if dist.shape[0] == 0 or dist.shape[1] == 0:
        raise ValueError(f"distmat must be non-empty, got shape {dist.shape}")
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    return dist


def _encode_labels(num_q: int, num_g: int, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any,
                   q_sceneids: Any, g_sceneids: Any) -> _Labels:
    """Checked labels as shared codes; the exclusion labels are the scenes when given, else the cameras."""
    qp = as_labels(q_pids, "q_pids", num_q)
    gp = as_labels(g_pids, "g_pids", num_g)
    qc = as_labels(q_camids, "q_camids", num_q)
    gc = as_labels(g_camids, "g_camids", num_g)
    if (q_sceneids is None) != (g_sceneids is None):
        raise ValueError("q_sceneids and g_sceneids must both be given (scene protocol) or both be None")
    if q_sceneids is not None:
        # Scene protocol: exclusion by scene, cameras are irrelevant.
        q_excl = as_labels(q_sceneids, "q_sceneids", num_q)
        g_excl = as_labels(g_sceneids, "g_sceneids", num_g)
    else:
        q_excl, g_excl = qc, gc
    q_pid_code, g_pid_code = encode_pair(qp, gp)
    q_excl_code, g_excl_code = encode_pair(q_excl, g_excl)
    return _Labels(q_pid_code, g_pid_code, q_excl_code, g_excl_code)


def _reject_nan(block: np.ndarray, start: int) -> None:
    nan_rows = np.isnan(block).any(axis=1)
    if nan_rows.any():
        raise ValueError(f"distmat contains NaN (first in query row {start + int(np.argmax(nan_rows))}); "
                         "cannot rank NaN distances")


def _same_identity_ranks(block: np.ndarray, codes: np.ndarray, g_by_pid: np.ndarray, pid_count: np.ndarray,
                         pid_start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, gallery column, 0-based rank in the full row) of every same-identity pair of a chunk,
    sorted by row, then rank."""
    n = len(block)
    counts = pid_count[codes]
    total = int(counts.sum())
    rows = np.repeat(np.arange(n), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    cols = g_by_pid[np.repeat(pid_start[codes], counts) + offsets]
    ranks0 = match_ranks(block, rows, cols)  # 0-based rank in the full gallery ranking
    by_rank = np.lexsort((ranks0, rows))
    return rows[by_rank], cols[by_rank], ranks0[by_rank]


def _accumulate(totals: _Totals, rows: np.ndarray, ranks0: np.ndarray, removed: np.ndarray, n: int,
                max_rank: int) -> None:
    """Add the AP, INP and first-match ranks of one chunk's ``n`` queries to ``totals``.

    The protocol only ever drops same-identity items, so filtering is done on the sparse
    list of pairs: rank in the filtered list = rank - #dropped items ranked before it.
    """
    _, row_first = row_starts(rows, n)
    removed_before = np.cumsum(removed) - removed
    removed_before = removed_before - removed_before[row_first[rows]]
    keep = ~removed
    rows_v = rows[keep]
    pos = (ranks0 - removed_before)[keep] + 1  # 1-based rank among the kept gallery items

    num_rel, first_v = row_starts(rows_v, n)
    hit = np.arange(len(rows_v)) - first_v[rows_v] + 1  # k-th relevant item of its query
    prec_sum = np.bincount(rows_v, weights=hit / pos, minlength=n)

    valid = num_rel > 0
    if not valid.any():
        return
    nr = num_rel[valid]
    fv = first_v[valid]
    first_pos = pos[fv]
    last_pos = pos[fv + nr - 1]

    totals.ap_sum += float(np.sum(prec_sum[valid] / nr))
    totals.inp_sum += float(np.sum(nr / last_pos))
    totals.num_valid += int(valid.sum())
    in_range = first_pos <= max_rank
    totals.first_hist += np.bincount(first_pos[in_range] - 1, minlength=max_rank)
