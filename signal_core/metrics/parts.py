"""A retrieval similarity split by the parts of the feature: which part made two triples similar.

Signal's retrieval feature is ``cat(cls_R, cls_N, cls_T, f_rnt)`` (:attr:`SignalOutput.feature`):
the RGB, NIR and TIR class tokens (``D`` wide each) and the fused SIM tokens (``f_rnt``, the three
interacted class tokens, ``3D`` wide; absent without SIM). For a query ``q`` and a gallery feature
``g``, both L2-normalised as a whole (as ranking uses them), per part ``p``:

* ``cosine_p = q_p . g_p / (|q_p| |g_p|)``: how alike the two are in that part alone; 0 when either
  part is all zeros.
* ``contribution_p = q_p . g_p``: that part's term of the ranking score; they sum to the score
  ``q . g`` (the cosine of the whole features).
* ``share_p = contribution_p / (q . g)``: the fraction of the score the part accounts for; the shares
  sum to 1 (a part whose tokens point apart has a negative share); all 0 when the score is 0.

All three are unchanged by any positive scaling of ``q`` or ``g`` as a whole, so features stored
L2-normalised (or not at all) give the same numbers.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

PART_NAMES = ("rgb", "nir", "tir", "fused")  # the feature's parts, in feature order
PART_LETTERS = {"rgb": "R", "nir": "N", "tir": "T", "fused": "F"}
EPS = 1e-12


def feature_layout(feature_dim: int, embed_dim: int) -> dict[str, slice]:
    """The columns of each part: ``{"rgb": slice(0, D), "nir": ..., "tir": ..., "fused": slice(3D, 6D)}``.

    Args:
        feature_dim: F, the retrieval feature's width (6D with SIM, 3D without).
        embed_dim: D, the width of one token (``SignalConfig.embed_dim``).
    """
    d = int(embed_dim)
    if feature_dim not in (3 * d, 6 * d):
        raise ValueError(f"a feature of width {feature_dim} is not 3 or 6 tokens of width {d}.")
    layout = {name: slice(i * d, (i + 1) * d) for i, name in enumerate(PART_NAMES[:3])}
    if feature_dim == 6 * d:
        layout["fused"] = slice(3 * d, 6 * d)
    return layout


@dataclass
class PartScore:
    """One part of one match."""

    cosine: float  # cosine of the query's and the match's part alone (0 if either is zeros)
    share: float  # contribution / score; the shares of one match sum to 1
    contribution: float  # q_p . g_p of the L2-normalised features; they sum to the score


@dataclass
class PartScores:
    """The parts of K matches of one query; arrays [K, P], columns in ``names`` order."""

    names: tuple[str, ...]
    cosine: np.ndarray  # [K, P]
    contribution: np.ndarray  # [K, P], rows sum to ``score``
    share: np.ndarray  # [K, P], rows sum to 1 (0 where the score is 0)
    score: np.ndarray  # [K] cosine of the whole features

    def row(self, i: int) -> dict[str, PartScore]:
        """Match ``i``'s parts by name."""
        return {name: PartScore(float(self.cosine[i, j]), float(self.share[i, j]), float(self.contribution[i, j]))
                for j, name in enumerate(self.names)}


def part_scores(query, gallery, layout: Mapping[str, slice]) -> PartScores:
    """Split the cosine similarity of ``query`` with each gallery row by feature part.

    Args:
        query: [F] (one query for all rows) or [K, F] (one per row); numpy or torch.
        gallery: [K, F] the matches' features (any positive scale per row).
        layout: from :func:`feature_layout`.

    Returns:
        :class:`PartScores` with [K, P] arrays, computed in float64.
    """
    q = _as_array(query)
    g = _as_array(gallery)
    if g.ndim != 2 or q.shape[-1] != g.shape[1] or q.ndim not in (1, 2):
        raise ValueError(f"query [F] or [K, F] and gallery [K, F] of one width; got {q.shape} and {g.shape}.")
    q = np.broadcast_to(q, g.shape)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), EPS)  # [K, F]
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), EPS)  # [K, F]
    names = tuple(layout)
    contribution = np.stack([np.einsum("kf,kf->k", q[:, s], g[:, s]) for s in layout.values()], axis=1)  # [K, P]
    norms = np.stack([np.linalg.norm(q[:, s], axis=1) * np.linalg.norm(g[:, s], axis=1)
                      for s in layout.values()], axis=1)  # [K, P]
    cosine = np.where(norms > EPS, contribution / np.maximum(norms, EPS), 0.0)
    score = contribution.sum(axis=1)  # [K]
    nonzero = np.abs(score) > EPS
    share = np.where(nonzero[:, None], contribution / np.where(nonzero, score, 1.0)[:, None], 0.0)
    return PartScores(names, cosine, contribution, share, score)


def _as_array(x) -> np.ndarray:
    """A torch tensor or array-like as a float64 numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
