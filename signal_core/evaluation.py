"""ReID ranking metrics: CMC, mAP, mINP, plus feature distances and k-reciprocal re-ranking.

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

Only the ranks of the same-identity gallery items are needed, so instead of a full
argsort per query, each chunk of rows is sorted by value (fast SIMD sort) and the
same-identity items are located by binary search; only the rare items whose distance
occurs more than once in their row fall back to a stable argsort of that row.

Unlike the authors' code nothing is printed and no file is written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["RankResult", "evaluate_rank", "pairwise_distance", "re_ranking"]

# Working-set budget of one query chunk (sorted values, int64 keys, temporaries).
_CHUNK_BUDGET_BYTES = 64 * 2**20
_BYTES_PER_CELL = 32


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


# --------------------------------------------------------------------------- helpers


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:  # no numpy equivalent; float32 holds it exactly
            x = x.float()
        x = x.numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} cannot be converted to a numpy array: {exc}") from exc


def _as_labels(x: Any, name: str, length: int) -> np.ndarray:
    arr = _to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != length:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the distance matrix implies {length}")
    return arr


def _encode_pair(q: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map query and gallery labels to shared int32 codes (equal label <=> equal code)."""
    _, inverse = np.unique(np.concatenate([q, g]), return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int32, copy=False)
    return inverse[: len(q)], inverse[len(q):]


def _exact_float32(block: np.ndarray) -> np.ndarray | None:
    """``block`` as float32 if that is exact (same values, same order), else None."""
    if block.dtype == np.float32:
        return block
    if block.dtype == np.float16:
        return block.astype(np.float32)
    if block.dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            b32 = block.astype(np.float32)
        return b32 if np.array_equal(b32, block) else None
    if block.dtype.kind in "iu" and block.size:
        if int(block.min()) >= -(2**24) and int(block.max()) <= 2**24:  # exactly representable
            return block.astype(np.float32)
    return None


def _float32_keys(x: np.ndarray) -> np.ndarray:
    """Order-preserving int64 keys in [0, 2**32) of (non-NaN) float32 values; -0.0 == +0.0."""
    k = x.view(np.int32).astype(np.int64)
    neg = k < 0
    if neg.any():  # sign-magnitude -> two's complement order: -m for negative floats
        k[neg] = -(2**31) - k[neg]
    k += 2**31
    return k


def _stable_argsort_rows(block: np.ndarray) -> np.ndarray:
    """Row-wise argsort equal to ``np.argsort(block, axis=1, kind="stable")`` (int64).

    float32-exact data: sort of the unique int64 keys ``value_key << 32 | column``
    (fast, SIMD).  Otherwise: the default non-stable sort, with a stable re-sort of only
    the rows that contain exactly equal values (the only rows where the two can differ).
    """
    num_cols = block.shape[1]
    b32 = _exact_float32(block)
    if b32 is not None and num_cols < 2**32:
        keys = _float32_keys(b32)
        keys -= 2**31  # signed 32-bit range, so the shift below cannot overflow
        keys <<= 32
        keys |= np.arange(num_cols, dtype=np.int64)
        keys.sort(axis=1)
        keys &= 0xFFFFFFFF
        return keys
    order = np.argsort(block, axis=1)
    if num_cols > 1:
        vals = np.take_along_axis(block, order, axis=1)
        tied = (vals[:, 1:] == vals[:, :-1]).any(axis=1)
        del vals
        if tied.any():
            order[tied] = np.argsort(block[tied], axis=1, kind="stable")
    return order


def _inverse_rank(block: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Stable 0-based rank of ``block[rows, cols]`` within its row, via a full argsort."""
    order = _stable_argsort_rows(block)
    inv = np.empty_like(order)
    np.put_along_axis(inv, order, np.arange(block.shape[1], dtype=order.dtype)[None, :], axis=1)
    return inv[rows, cols]


def _match_ranks(block: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Stable 0-based rank (ties by column) of the entries ``block[rows, cols]`` in their rows.

    Only a few entries per row are needed (the same-identity gallery items), so for
    float32-exact data the rows are sorted by value only and the entries are located by
    one binary search over all rows (row id in the high bits of the keys).  Entries whose
    value occurs more than once in the row get their exact stable rank from a stable
    argsort of just those rows.
    """
    n, num_g = block.shape
    b32 = _exact_float32(block)
    if b32 is None or len(rows) == 0:
        return _inverse_rank(block, rows, cols) if len(rows) else np.zeros(0, dtype=np.int64)
    sorted_keys = _float32_keys(np.sort(b32, axis=1))
    sorted_keys += (np.arange(n, dtype=np.int64) << 32)[:, None]
    flat = sorted_keys.reshape(-1)
    needles = _float32_keys(b32[rows, cols]) + (rows.astype(np.int64) << 32)
    left = np.searchsorted(flat, needles, side="left")
    right = np.searchsorted(flat, needles, side="right")
    del sorted_keys, flat
    ranks = left - rows.astype(np.int64) * num_g  # number of strictly smaller values
    tied = (right - left) > 1
    if tied.any():
        tied_rows = np.unique(rows[tied])
        ranks[tied] = _inverse_rank(b32[tied_rows], np.searchsorted(tied_rows, rows[tied]), cols[tied])
    return ranks


def _row_starts(rows: np.ndarray, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """For row-sorted entry row ids: (count per row, index of each row's first entry)."""
    counts = np.bincount(rows, minlength=num_rows)
    starts = np.cumsum(counts) - counts
    return counts, starts


def _auto_chunk_size(num_g: int) -> int:
    return max(1, _CHUNK_BUDGET_BYTES // (max(num_g, 1) * _BYTES_PER_CELL))


# --------------------------------------------------------------------------- evaluation


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
    dist = _to_numpy(distmat, "distmat")
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D [num_query, num_gallery], got shape {dist.shape}")
    if dist.dtype.kind not in "fiu":
        raise ValueError(f"distmat must hold real numbers, got dtype {dist.dtype}")
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat must be non-empty, got shape {dist.shape}")
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")

    qp = _as_labels(q_pids, "q_pids", num_q)
    gp = _as_labels(g_pids, "g_pids", num_g)
    qc = _as_labels(q_camids, "q_camids", num_q)
    gc = _as_labels(g_camids, "g_camids", num_g)
    if (q_sceneids is None) != (g_sceneids is None):
        raise ValueError("q_sceneids and g_sceneids must both be given (scene protocol) or both be None")
    if q_sceneids is not None:
        # Scene protocol: exclusion by scene, cameras are irrelevant.
        q_excl = _as_labels(q_sceneids, "q_sceneids", num_q)
        g_excl = _as_labels(g_sceneids, "g_sceneids", num_g)
    else:
        q_excl, g_excl = qc, gc

    q_pid_code, g_pid_code = _encode_pair(qp, gp)
    q_excl_code, g_excl_code = _encode_pair(q_excl, g_excl)

    max_rank = int(min(max_rank, num_g))
    step = int(chunk_size) if chunk_size is not None else _auto_chunk_size(num_g)
    is_float = dist.dtype.kind == "f"

    # Gallery grouped by identity: the same-identity items of a query are found without
    # scanning the gallery.
    num_codes = int(max(q_pid_code.max(), g_pid_code.max())) + 1
    g_by_pid = np.argsort(g_pid_code, kind="stable")
    pid_count, pid_start = _row_starts(g_pid_code, num_codes)

    first_hist = np.zeros(max_rank, dtype=np.int64)  # queries whose first match is at rank k+1
    ap_sum = 0.0
    inp_sum = 0.0
    num_valid = 0

    for start in range(0, num_q, step):
        stop = min(start + step, num_q)
        block = dist[start:stop]
        if is_float:
            nan_rows = np.isnan(block).any(axis=1)
            if nan_rows.any():
                raise ValueError(f"distmat contains NaN (first in query row {start + int(np.argmax(nan_rows))}); "
                                 "cannot rank NaN distances")
        n = stop - start

        # (row, gallery column) of every same-identity pair of this chunk, row-sorted.
        codes = q_pid_code[start:stop]
        counts = pid_count[codes]
        total = int(counts.sum())
        rows = np.repeat(np.arange(n), counts)
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        cols = g_by_pid[np.repeat(pid_start[codes], counts) + offsets]
        ranks0 = _match_ranks(block, rows, cols)  # 0-based rank in the full gallery ranking
        by_rank = np.lexsort((ranks0, rows))
        rows, cols, ranks0 = rows[by_rank], cols[by_rank], ranks0[by_rank]

        # The protocol only ever drops same-identity items, so filtering is done on this
        # sparse list: rank in the filtered list = rank - #dropped items ranked before it.
        removed = g_excl_code[cols] == q_excl_code[start + rows]
        _, row_first = _row_starts(rows, n)
        removed_before = np.cumsum(removed) - removed
        removed_before = removed_before - removed_before[row_first[rows]]
        keep = ~removed
        rows_v = rows[keep]
        pos = (ranks0 - removed_before)[keep] + 1  # 1-based rank among the kept gallery items

        num_rel, first_v = _row_starts(rows_v, n)
        hit = np.arange(len(rows_v)) - first_v[rows_v] + 1  # k-th relevant item of its query
        prec_sum = np.bincount(rows_v, weights=hit / pos, minlength=n)

        valid = num_rel > 0
        if not valid.any():
            continue
        nr = num_rel[valid]
        fv = first_v[valid]
        first_pos = pos[fv]
        last_pos = pos[fv + nr - 1]

        ap_sum += float(np.sum(prec_sum[valid] / nr))
        inp_sum += float(np.sum(nr / last_pos))
        num_valid += int(valid.sum())
        in_range = first_pos <= max_rank
        first_hist += np.bincount(first_pos[in_range] - 1, minlength=max_rank)

    if num_valid == 0:
        protocol = "scene" if q_sceneids is not None else "camera"
        raise ValueError(f"no query has a valid match in the gallery ({protocol} protocol: same-identity items from "
                         f"the same {protocol} are excluded); check the query/gallery split and labels")

    cmc = np.cumsum(first_hist).astype(np.float64) / num_valid
    cmc.setflags(write=False)
    return RankResult(mAP=ap_sum / num_valid, mINP=inp_sum / num_valid, cmc=cmc, num_valid_queries=num_valid)


# --------------------------------------------------------------------------- distances


def pairwise_distance(query_feats: Any, gallery_feats: Any, normalize: bool = True) -> np.ndarray:
    """Squared Euclidean distances ``[Q, G]`` between (optionally L2-normalised) features.

    Computed with torch on the features' device as ``|q|^2 + |g|^2 - 2 q.g`` (the formula
    of the authors' ``euclidean_distance``), returned as a CPU **numpy** array: float32,
    or float64 when both inputs are float64.  Half/bfloat16 features are computed in
    float32.  Values are not clamped, so tiny negative values (rounding) are possible.
    """
    q = query_feats if isinstance(query_feats, torch.Tensor) else torch.as_tensor(np.asarray(query_feats))
    g = gallery_feats if isinstance(gallery_feats, torch.Tensor) else torch.as_tensor(np.asarray(gallery_feats))
    if q.ndim != 2 or g.ndim != 2:
        raise ValueError(f"features must be 2-D [N, D], got {tuple(q.shape)} and {tuple(g.shape)}")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"feature dims differ: query {q.shape[1]} vs gallery {g.shape[1]}")
    if q.device != g.device:
        g = g.to(q.device)
    dtype = torch.float64 if (q.dtype == torch.float64 and g.dtype == torch.float64) else torch.float32
    with torch.no_grad():
        q = q.detach().to(dtype)
        g = g.detach().to(dtype)
        if normalize:
            q = torch.nn.functional.normalize(q, p=2, dim=1)
            g = torch.nn.functional.normalize(g, p=2, dim=1)
        dist = q.pow(2).sum(dim=1, keepdim=True) + g.pow(2).sum(dim=1).unsqueeze(0)
        dist.addmm_(q, g.t(), beta=1, alpha=-2)
    return dist.cpu().numpy()


# --------------------------------------------------------------------------- re-ranking


def _membership(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.searchsorted(sorted_keys, keys)
    pos = np.minimum(pos, len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _reciprocal(ranks: np.ndarray) -> np.ndarray:
    """``out[i, t]``: is ``i`` among the neighbours of its neighbour ``ranks[i, t]``?"""
    n, k = ranks.shape
    out = np.empty((n, k), dtype=bool)
    step = max(1, 2**22 // max(k * k, 1))
    for a in range(0, n, step):
        b = min(a + step, n)
        out[a:b] = (ranks[ranks[a:b]] == np.arange(a, b)[:, None, None]).any(axis=2)
    return out


def re_ranking(q_g_dist: Any, q_q_dist: Any, g_g_dist: Any, k1: int = 20, k2: int = 6,
               lambda_value: float = 0.3) -> np.ndarray:
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) of query-gallery distances.

    Takes the three distance blocks (numpy or tensors) and returns the re-ranked
    ``[Q, G]`` float32 distances.  The distances are used as given (no squaring), as in
    the authors' feature-based ``re_ranking``: with squared Euclidean distances from
    :func:`pairwise_distance` on normalised features this reproduces their
    ``re_ranking(qf, gf, k1, k2, lambda_value)`` up to rounding (they store the
    encodings in float16; we use float64).  Vectorised: the k-reciprocal sets, the
    local query expansion and the Jaccard distance are built from sparse (row, column)
    lists; memory is O(N^2) only for the full distance matrix, N = Q + G.
    """
    qg = _to_numpy(q_g_dist, "q_g_dist")
    qq = _to_numpy(q_q_dist, "q_q_dist")
    gg = _to_numpy(g_g_dist, "g_g_dist")
    if qg.ndim != 2:
        raise ValueError(f"q_g_dist must be 2-D, got shape {qg.shape}")
    num_q, num_g = qg.shape
    if qq.shape != (num_q, num_q):
        raise ValueError(f"q_q_dist must have shape {(num_q, num_q)}, got {qq.shape}")
    if gg.shape != (num_g, num_g):
        raise ValueError(f"g_g_dist must have shape {(num_g, num_g)}, got {gg.shape}")
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    dtype = np.result_type(qg.dtype, qq.dtype, gg.dtype, np.float32)
    for name, arr in (("q_g_dist", qg), ("q_q_dist", qq), ("g_g_dist", gg)):
        if np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN")
    n = num_q + num_g

    # Transposed full matrix, each row divided by its max (= the authors' column-max
    # normalisation followed by a transpose).
    dist = np.empty((n, n), dtype=dtype)
    dist[:num_q, :num_q] = qq.T
    dist[:num_q, num_q:] = qg
    dist[num_q:, :num_q] = qg.T
    dist[num_q:, num_q:] = gg.T
    dist /= dist.max(axis=1, keepdims=True)

    kmax = min(max(k1 + 1, k2), n)
    step = max(1, _CHUNK_BUDGET_BYTES // (n * _BYTES_PER_CELL))
    initial_rank = np.empty((n, kmax), dtype=np.int64)
    for a in range(0, n, step):
        initial_rank[a:a + step] = _stable_argsort_rows(dist[a:a + step])[:, :kmax]

    # k-reciprocal neighbours R(i, k1) and the half-size sets R(j, k1/2) of candidates.
    fwd = initial_rank[:, :k1 + 1]
    recip = _reciprocal(fwd)
    kh = int(np.around(k1 / 2)) + 1
    fwd_h = initial_rank[:, :kh]
    recip_h = _reciprocal(fwd_h)
    len_h = recip_h.sum(axis=1)

    ki, kt = np.nonzero(recip)  # (i, t): fwd[i, t] is a k-reciprocal neighbour of i
    kj = fwd[ki, kt]
    k_keys = ki * n + kj  # sorted: row-major rows, and (i, j) pairs are unique per row
    k_keys_sorted = np.sort(k_keys)

    # Expansion: candidate j of i is accepted if > 2/3 of R(j, k1/2) lies in R(i, k1).
    cand_keys = ki[:, None] * n + np.where(recip_h[kj], fwd_h[kj], -1)
    overlap = (_membership(k_keys_sorted, cand_keys) & recip_h[kj]).sum(axis=1)
    accepted = overlap > 2 / 3 * len_h[kj]
    acc_i = ki[accepted]
    acc_j = kj[accepted]
    ext_mask = recip_h[acc_j]
    ext_keys = (acc_i[:, None] * n + fwd_h[acc_j])[ext_mask]
    v_keys = np.unique(np.concatenate([k_keys, ext_keys]))
    v_rows = v_keys // n
    v_cols = v_keys % n
    weight = np.exp(-dist[v_rows, v_cols].astype(np.float64))
    v_vals = weight / np.bincount(v_rows, weights=weight, minlength=n)[v_rows]

    # Local query expansion: V_i <- mean of V over the k2 nearest neighbours of i.
    if k2 != 1:
        nbrs = initial_rank[:, :k2]
        num_nbrs = nbrs.shape[1]
        row_nnz, row_start = _row_starts(v_rows, n)
        counts = row_nnz[nbrs].reshape(-1)  # entries contributed to row i by each neighbour
        src_start = row_start[nbrs].reshape(-1)
        total = int(counts.sum())
        dst_row = np.repeat(np.repeat(np.arange(n), num_nbrs), counts)
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        src = np.repeat(src_start, counts) + offsets
        qe_keys, inverse = np.unique(dst_row * n + v_cols[src], return_inverse=True)
        v_vals = np.bincount(inverse.reshape(-1), weights=v_vals[src]) / num_nbrs
        v_rows = qe_keys // n
        v_cols = qe_keys % n

    # Jaccard distance from sum_k min(V[i, k], V[j, k]) over shared non-zero columns k.
    col_order = np.lexsort((v_rows, v_cols))
    c_rows = v_rows[col_order]
    c_vals = v_vals[col_order]
    col_nnz, col_start = _row_starts(v_cols[col_order], n)

    out = np.empty((num_q, num_g), dtype=np.float32)
    q_entries = np.flatnonzero(v_rows < num_q)  # row-sorted entries of the query rows
    _, q_first = _row_starts(v_rows[q_entries], num_q)
    q_count = np.bincount(v_rows[q_entries], minlength=num_q)
    q_step = max(1, 2**22 // max(num_g, 1))
    for a in range(0, num_q, q_step):
        b = min(a + q_step, num_q)
        sel = q_entries[q_first[a]:q_first[b - 1] + q_count[b - 1]]
        e_rows = v_rows[sel]
        e_cols = v_cols[sel]
        e_vals = v_vals[sel]
        cnt = col_nnz[e_cols]
        total = int(cnt.sum())
        rep = np.repeat(np.arange(len(sel)), cnt)
        offsets = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        src = col_start[e_cols][rep] + offsets
        partner = c_rows[src]
        gal = partner >= num_q
        contrib = np.minimum(e_vals[rep][gal], c_vals[src][gal])
        flat = (e_rows[rep][gal] - a) * num_g + (partner[gal] - num_q)
        temp_min = np.bincount(flat, weights=contrib, minlength=(b - a) * num_g).reshape(b - a, num_g)
        jaccard = 1.0 - temp_min / (2.0 - temp_min)
        out[a:b] = jaccard * (1.0 - lambda_value) + dist[a:b, num_q:] * lambda_value
    return out
