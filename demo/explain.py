"""What a search shows besides the ranking, without UI code: the two drawing views of each modality
and how the ranks move when the modality switch turns some of the query's modalities off.

Views of one triple (per modality, RGB / NIR / TIR):

* "kept tokens": the patches SIM kept (tinted by why) and LAM's reference points with arrows to where
  it sampled. Every arrow is lengthened by a round factor of at most x5
  (:func:`signal_core.viz.auto_offset_scale`, as in the evaluation report), written on the image with
  the mean real offset ("LAM arrows x5: 0.03 px"): offsets below a pixel stay visibly small. With
  image-level registration on, the positions include the displacement it found and the arrows are drawn
  at their true length (x1, :func:`signal_core.viz.lam_arrow_scale`).
* "SIM scores": the intra- and inter-modal token scores SIM selects by, as two heatmaps side by side.
* "registration" (only for a model with registration, :func:`views`): RGB's edges; NIR's and TIR's edges
  over RGB before (with the displacement found, at its true length) and after registration
  (:mod:`signal_core.viz.registration`).

What distinguishes a match by feature part (:func:`part_standing`): for each part alone (RGB, NIR,
TIR class token, fused SIM tokens), the match's rank among the whole gallery by that part's cosine
and the z-score of that cosine against the gallery's. The shares of the score hardly differ between
matches (L2-normalised parts); these tell which modality made this match stand out.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from signal_core.modalities import LABELS, MODALITIES
from signal_core.retrieval.index import GalleryIndex
from signal_core.viz import (
    annotate,
    explanation_overlay,
    lam_arrow_scale,
    offset_pixels,
    overlay_size,
    reference_panel,
    registration_panels,
    resize_for_overlay,
    score_maps_overlay,
)

VIEWS = ("kept tokens", "SIM scores")  # the page's view switch, first = default
REGISTRATION_VIEW = "registration"  # a third view, for a model with image-level registration
RANK_DEPTH = 100  # through an index, earlier ranks are looked up among this many (or 2 top k) results


class Drawings:
    """The two views of one triple, per modality in RGB, NIR, TIR order, each drawn when first asked for.

    Holding the explanation (item 0, numpy) and the images at the drawing size only, it is cheap to
    make: a search returns it and the page draws the views in a second step, after the results.
    """

    def __init__(self, images: Sequence[np.ndarray | None], explanation, grid_size: tuple[int, int],
                 image_size: tuple[int, int]):
        canvas = overlay_size(image_size)  # the drawings resize to this (same size: an exact copy)
        self.images = [None if image is None else resize_for_overlay(image, canvas) for image in images]
        self.grid_size, self.image_size = grid_size, image_size
        self.parts = []
        for modality in MODALITIES:
            e = explanation[modality]
            self.parts.append({"reference": _np(e.reference_points), "positions": _first(e.sampled_positions),
                               "intra": _first(e.intra), "inter": _first(e.inter), "final": _first(e.final),
                               "intra_scores": _first(e.intra_scores), "inter_scores": _first(e.inter_scores),
                               "displacement": _first(getattr(e, "displacement", None))})
        self.registered = any(p["displacement"] is not None for p in self.parts)

    @cached_property
    def offset_scales(self) -> list[float]:
        """How many times longer than the real offsets the LAM arrows are drawn, per modality."""
        return [1.0 if p["reference"] is None or p["positions"] is None
                else lam_arrow_scale(p["reference"], p["positions"], self.grid_size, self.image_size, self.registered)
                for p in self.parts]

    @cached_property
    def kept(self) -> list[np.ndarray]:
        """[H, W, 3] SIM kept tokens + LAM arrows (scaled; the factor is written on it)."""
        out = []
        for image, p, scale in zip(self.images, self.parts, self.offset_scales):
            drawn = explanation_overlay(image, self.grid_size, self.image_size, intra=p["intra"], inter=p["inter"],
                                        final=p["final"], reference=p["reference"], positions=p["positions"],
                                        offset_scale=scale)
            if p["reference"] is not None and p["positions"] is not None:
                mean = float(offset_pixels(p["reference"], p["positions"], self.grid_size, self.image_size).mean())
                drawn = annotate(drawn, f"LAM arrows x{scale:g}: {mean:.2f} px")  # fits the narrowest canvas
            out.append(drawn)
        return out

    @cached_property
    def scores(self) -> list[np.ndarray]:
        """[H, 2W + gap, 3] intra | inter SIM score heatmaps."""
        return [score_maps_overlay(image, self.grid_size, self.image_size, p["intra_scores"], p["inter_scores"])
                for image, p in zip(self.images, self.parts)]

    @cached_property
    def registration(self) -> list[np.ndarray]:
        """RGB's edges; NIR's and TIR's over RGB before | after registration (the displacement's arrow at its
        true length); without registration, the kept-token drawings."""
        rgb = self.images[0]
        if not self.registered or rgb is None:
            return self.kept
        out = [reference_panel(rgb)]
        for m in range(1, len(MODALITIES)):
            out.append(registration_panels(rgb, self.images[m], self.parts[m]["displacement"], self.image_size,
                                           LABELS[MODALITIES[m]]))
        return out

    def view(self, name: str) -> list[np.ndarray]:
        """The drawings of view ``name`` (one of :func:`views`)."""
        return {VIEWS[1]: self.scores, REGISTRATION_VIEW: self.registration}.get(name, self.kept)


def views(registered: bool) -> tuple[str, ...]:
    """The page's view switch: :data:`VIEWS`, and :data:`REGISTRATION_VIEW` for a model with registration."""
    return (*VIEWS, REGISTRATION_VIEW) if registered else VIEWS


def draw_explanation(images: Sequence[np.ndarray | None], explanation, grid_size: tuple[int, int],
                     image_size: tuple[int, int]) -> Drawings:
    """Both views of the first item of ``explanation`` (from ``SignalModel.explain``) over ``images``,
    drawn when first used."""
    return Drawings(images, explanation, grid_size, image_size)


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


@dataclass
class PartStanding:
    """Where K matches stand among the whole gallery by each feature part alone; arrays [K, P]."""

    names: tuple[str, ...]  # the parts, in column order ("rgb", "nir", "tir", "fused")
    rank: np.ndarray  # [K, P] 1-based rank of the match by that part's cosine (1 + rows scoring higher)
    z: np.ndarray  # [K, P] (the match's part cosine - the gallery's mean) / the gallery's standard deviation

    def row(self, i: int) -> dict[str, tuple[int, float]]:
        """Match ``i``'s (rank, z) by part name."""
        return {name: (int(self.rank[i, j]), float(self.z[i, j])) for j, name in enumerate(self.names)}


def part_standing(features: torch.Tensor, query: torch.Tensor, rows: torch.Tensor,
                  layout: Mapping[str, slice]) -> PartStanding:
    """Each part's cosine of ``query`` ([F] or [1, F]) with every gallery row ([N, F]), and where ``rows``
    ([K]) stand in it: their rank and z-score per part. One pass over the gallery per part."""
    q = query.reshape(-1).float().to(features.device)
    cosines = []
    for columns in layout.values():
        part = features[:, columns].float()  # [N, d]
        norms = part.norm(dim=1) * q[columns].norm()  # [N]
        cosines.append(torch.where(norms > 1e-12, part @ q[columns] / norms.clamp_min(1e-12), 0.0))
    table = torch.stack(cosines, dim=1)  # [N, P]
    own = table[rows.to(table.device)]  # [K, P]
    rank = (table[None, :, :] > own[:, None, :]).sum(dim=1) + 1  # [K, P]
    z = (own - table.mean(dim=0)) / table.std(dim=0, unbiased=False).clamp_min(1e-12)  # [K, P]
    return PartStanding(tuple(layout), rank.cpu().numpy(), z.cpu().numpy())


def _first(value):
    """Item 0 of a batched tensor, as numpy (None stays None)."""
    return None if value is None else _np(value[0])


def _np(value):
    if value is None:
        return None
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
