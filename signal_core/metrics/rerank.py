"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) of query-gallery distances, vectorised."""
from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import BYTES_PER_CELL, CHUNK_BUDGET_BYTES, row_starts, to_numpy
from .sorting import stable_argsort_rows


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
    qg, qq, gg = _check_inputs(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)
    num_q = qg.shape[0]
    dist = _normalised_full(qg, qq, gg)
    n = dist.shape[0]
    kmax = min(max(k1 + 1, k2), n)
    step = max(1, CHUNK_BUDGET_BYTES // (n * BYTES_PER_CELL))
    initial_rank = np.empty((n, kmax), dtype=np.int64)  # [N, kmax] nearest neighbours, self first
    for a in range(0, n, step):
        initial_rank[a:a + step] = stable_argsort_rows(dist[a:a + step])[:, :kmax]
    v_rows, v_cols, v_vals = _k_reciprocal_weights(dist, initial_rank, k1)
    if k2 != 1:
        v_rows, v_cols, v_vals = _local_query_expansion(initial_rank[:, :k2], v_rows, v_cols, v_vals)
    return _jaccard_mix(dist, num_q, v_rows, v_cols, v_vals, lambda_value)


def _check_inputs(q_g_dist: Any, q_q_dist: Any, g_g_dist: Any, k1: int, k2: int,
                  lambda_value: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three blocks as numpy arrays, after checking shapes, options and NaN."""
    qg = to_numpy(q_g_dist, "q_g_dist")
    qq = to_numpy(q_q_dist, "q_q_dist")
    gg = to_numpy(g_g_dist, "g_g_dist")
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
    for name, arr in (("q_g_dist", qg), ("q_q_dist", qq), ("g_g_dist", gg)):
        if np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN")
    return qg, qq, gg


def _normalised_full(qg: np.ndarray, qq: np.ndarray, gg: np.ndarray) -> np.ndarray:
    """Transposed full ``[N, N]`` matrix, each row divided by its max (= the authors' column-max
    normalisation followed by a transpose)."""
    num_q, num_g = qg.shape
    n = num_q + num_g
    dist = np.empty((n, n), dtype=np.result_type(qg.dtype, qq.dtype, gg.dtype, np.float32))
    dist[:num_q, :num_q] = qq.T
    dist[:num_q, num_q:] = qg
    dist[num_q:, :num_q] = qg.T
    dist[num_q:, num_q:] = gg.T
    dist /= dist.max(axis=1, keepdims=True)
    return dist


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


def _k_reciprocal_weights(dist: np.ndarray, initial_rank: np.ndarray, k1: int):
    """Sparse rows of V: exp(-d) weights over the expanded k-reciprocal set of each item, rows sum to 1.

    Returns:
        (rows, cols, values), sorted by (row, column).
    """
    n = dist.shape[0]
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
    return v_rows, v_cols, v_vals


def _local_query_expansion(nbrs: np.ndarray, v_rows: np.ndarray, v_cols: np.ndarray, v_vals: np.ndarray):
    """V_i <- mean of V over the k2 nearest neighbours ``nbrs`` [N, k2] of i; returns the new sparse rows."""
    n, num_nbrs = nbrs.shape
    row_nnz, row_start = row_starts(v_rows, n)
    counts = row_nnz[nbrs].reshape(-1)  # entries contributed to row i by each neighbour
    src_start = row_start[nbrs].reshape(-1)
    total = int(counts.sum())
    dst_row = np.repeat(np.repeat(np.arange(n), num_nbrs), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    src = np.repeat(src_start, counts) + offsets
    qe_keys, inverse = np.unique(dst_row * n + v_cols[src], return_inverse=True)
    v_vals = np.bincount(inverse.reshape(-1), weights=v_vals[src]) / num_nbrs
    return qe_keys // n, qe_keys % n, v_vals


def _jaccard_mix(dist: np.ndarray, num_q: int, v_rows: np.ndarray, v_cols: np.ndarray, v_vals: np.ndarray,
                 lambda_value: float) -> np.ndarray:
    """``(1 - lambda) * Jaccard + lambda * original`` for the query rows: ``[Q, G]`` float32.

    The Jaccard distance comes from sum_k min(V[i, k], V[j, k]) over shared non-zero columns k.
    """
    n = dist.shape[0]
    num_g = n - num_q
    col_order = np.lexsort((v_rows, v_cols))
    c_rows = v_rows[col_order]
    c_vals = v_vals[col_order]
    col_nnz, col_start = row_starts(v_cols[col_order], n)

    out = np.empty((num_q, num_g), dtype=np.float32)
    q_entries = np.flatnonzero(v_rows < num_q)  # row-sorted entries of the query rows
    _, q_first = row_starts(v_rows[q_entries], num_q)
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
