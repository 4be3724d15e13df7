"""Exact stable row ranking of distance blocks: float32 sort keys, stable argsort, ranks of chosen entries.

Ranking is by ascending distance with ties broken by column (a *stable* sort), so it equals
``np.argsort(block, axis=1, kind="stable")``.  Only the ranks of a few entries per row are usually
needed, so each row is sorted by value only (fast SIMD sort) and the entries are located by
binary search; only entries whose value occurs more than once in their row fall back to a stable
argsort of that row.
"""
from __future__ import annotations

import numpy as np


def exact_float32(block: np.ndarray) -> np.ndarray | None:
    """``block`` as float32 if that is exact (same values, same order), else None."""
    if block.dtype == np.float32:
        return block
    if block.dtype == np.float16:
        return block.astype(np.float32)
    if block.dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            b32 = block.astype(np.float32)
        return b32 if np.array_equal(b32, block) else None
    exact_int = (block.dtype.kind in "iu" and block.size
                 and int(block.min()) >= -(2**24) and int(block.max()) <= 2**24)  # exactly representable
    return block.astype(np.float32) if exact_int else None


def float32_keys(x: np.ndarray) -> np.ndarray:
    """Order-preserving int64 keys in [0, 2**32) of (non-NaN) float32 values; -0.0 == +0.0."""
    k = x.view(np.int32).astype(np.int64)
    neg = k < 0
    if neg.any():  # sign-magnitude -> two's complement order: -m for negative floats
        k[neg] = -(2**31) - k[neg]
    k += 2**31
    return k


def stable_argsort_rows(block: np.ndarray) -> np.ndarray:
    """Row-wise argsort equal to ``np.argsort(block, axis=1, kind="stable")`` (int64).

    float32-exact data: sort of the unique int64 keys ``value_key << 32 | column``
    (fast, SIMD).  Otherwise: the default non-stable sort, with a stable re-sort of only
    the rows that contain exactly equal values (the only rows where the two can differ).
    """
    num_cols = block.shape[1]
    b32 = exact_float32(block)
    if b32 is not None and num_cols < 2**32:
        keys = float32_keys(b32)
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
    order = stable_argsort_rows(block)
    inv = np.empty_like(order)
    np.put_along_axis(inv, order, np.arange(block.shape[1], dtype=order.dtype)[None, :], axis=1)
    return inv[rows, cols]


def match_ranks(block: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Stable 0-based rank (ties by column) of the entries ``block[rows, cols]`` in their rows.

    Only a few entries per row are needed (the same-identity gallery items), so for
    float32-exact data the rows are sorted by value only and the entries are located by
    one binary search over all rows (row id in the high bits of the keys).  Entries whose
    value occurs more than once in the row get their exact stable rank from a stable
    argsort of just those rows.
    """
    n, num_g = block.shape
    b32 = exact_float32(block)
    if b32 is None or len(rows) == 0:
        return _inverse_rank(block, rows, cols) if len(rows) else np.zeros(0, dtype=np.int64)
    sorted_keys = float32_keys(np.sort(b32, axis=1))
    sorted_keys += (np.arange(n, dtype=np.int64) << 32)[:, None]
    flat = sorted_keys.reshape(-1)
    needles = float32_keys(b32[rows, cols]) + (rows.astype(np.int64) << 32)
    left = np.searchsorted(flat, needles, side="left")
    right = np.searchsorted(flat, needles, side="right")
    del sorted_keys, flat
    ranks = left - rows.astype(np.int64) * num_g  # number of strictly smaller values
    tied = (right - left) > 1
    if tied.any():
        tied_rows = np.unique(rows[tied])
        ranks[tied] = _inverse_rank(b32[tied_rows], np.searchsorted(tied_rows, rows[tied]), cols[tied])
    return ranks
