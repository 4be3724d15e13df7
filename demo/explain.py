"""What a search shows besides the ranking, without UI code: the two drawing views of each modality
and how the ranks move when the modality switch turns some of the query's modalities off.

Views of one triple (per modality, RGB / NIR / TIR):

* "kept tokens": the patches SIM kept (tinted by why) and LAM's reference points with arrows to where
  it sampled. The learned offsets are often below a pixel, so every arrow is lengthened by a round
  factor (:func:`signal_core.viz.auto_offset_scale`, as in the evaluation report) written on the image
  ("LAM arrows x20").
* "SIM scores": the intra- and inter-modal token scores SIM selects by, as two heatmaps side by side.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from signal_core.index import GalleryIndex
from signal_core.modalities import MODALITIES
from signal_core.viz import annotate, auto_offset_scale, explanation_overlay, score_maps_overlay

VIEWS = ("kept tokens", "SIM scores")  # the page's view switch, first = default
RANK_DEPTH = 100  # through an index, earlier ranks are looked up among this many (or 2 top k) results


@dataclass
class Drawings:
    """The two views of one triple, per modality in RGB, NIR, TIR order."""

    kept: list[np.ndarray]  # [H, W, 3] SIM kept tokens + LAM arrows (scaled; the factor is written on it)
    scores: list[np.ndarray]  # [H, 2W + gap, 3] intra | inter SIM score heatmaps
    offset_scales: list[float]  # how many times longer than the real offsets the arrows are drawn

    def view(self, name: str) -> list[np.ndarray]:
        """The drawings of view ``name`` (one of :data:`VIEWS`)."""
        return self.kept if name == VIEWS[0] else self.scores


def draw_explanation(images: Sequence[np.ndarray | None], explanation, grid_size: tuple[int, int],
                     image_size: tuple[int, int]) -> Drawings:
    """Both views of the first item of ``explanation`` (from ``SignalModel.explain``) over ``images``."""
    kept, scores, scales = [], [], []
    for modality, image in zip(MODALITIES, images):
        e = explanation[modality]
        reference, positions = _np(e.reference_points), _first(e.sampled_positions)
        scale = 1.0
        if reference is not None and positions is not None:
            scale = auto_offset_scale(reference, positions, grid_size, image_size)
        drawn = explanation_overlay(image, grid_size, image_size, intra=_first(e.intra), inter=_first(e.inter),
                                    final=_first(e.final), reference=reference, positions=positions,
                                    offset_scale=scale)
        if reference is not None and positions is not None:
            drawn = annotate(drawn, f"LAM arrows x{scale:g}" if scale != 1 else "LAM arrows true length")
        kept.append(drawn)
        scores.append(score_maps_overlay(image, grid_size, image_size, _first(e.intra_scores),
                                         _first(e.inter_scores)))
        scales.append(scale)
    return Drawings(kept, scores, scales)


def switched_images(images: Sequence[np.ndarray | None], switched_on: Sequence[str] | None
                    ) -> tuple[list[np.ndarray | None], tuple[str, ...]]:
    """The query's images with the modalities not in ``switched_on`` removed (None = all on).

    Returns:
        The images to search with, and the given modalities the switch turned off.
    """
    if switched_on is None:
        return list(images), ()
    unknown = set(switched_on) - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modality {sorted(unknown)}; choose from {MODALITIES}.")
    off = tuple(m for m, img in zip(MODALITIES, images) if img is not None and m not in switched_on)
    return [None if m in off else img for m, img in zip(MODALITIES, images)], off


def gallery_vectors(features: torch.Tensor | None, index: GalleryIndex | None, rows: torch.Tensor) -> np.ndarray:
    """[k, F] L2-normalised gallery features of ``rows``: from memory, or from the index (see
    :meth:`GalleryIndex.vectors`)."""
    if index is not None:
        return index.vectors(rows.numpy())
    return features[rows.to(features.device)].float().cpu().numpy()


def ranks_of(features: torch.Tensor | None, index: GalleryIndex | None, query: torch.Tensor,
             rows: torch.Tensor, k: int) -> tuple[list[int | None], int]:
    """The 1-based ranks gallery ``rows`` have for ``query`` ([1, F]).

    In memory every rank is exact (1 + the rows scoring higher); through an index the ranks are looked
    up in the first ``depth`` results (None: further down).

    Returns:
        The ranks (in ``rows`` order) and the depth searched (the gallery size in memory).
    """
    q = F.normalize(query.float(), dim=1)
    if index is None:
        scores = features @ q[0].to(features.device)  # [N]
        own = scores[rows.to(features.device)]  # [k]
        ranks = (scores[None, :] > own[:, None]).sum(dim=1) + 1  # [k]
        return [int(r) for r in ranks.tolist()], len(scores)
    depth = min(len(index), max(RANK_DEPTH, 2 * k))
    found = index.search(q.cpu().numpy(), depth).rows[0]
    where = {int(row): rank for rank, row in enumerate(found.tolist(), start=1) if row >= 0}
    return [where.get(int(r)) for r in rows.tolist()], depth


def _first(value):
    """Item 0 of a batched tensor, as numpy (None stays None)."""
    return None if value is None else _np(value[0])


def _np(value):
    if value is None:
        return None
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
