"""Drawings of what a Signal model does, shared by the demo and the evaluation report.

* :mod:`.overlays`: SIM token selection and LAM sampling drawn on an image (numpy + PIL).
* :mod:`.registration`: what image-level registration did: NIR / TIR edges over RGB before and after, and
  the displacement it found at its true length (numpy + PIL + torch).
* :mod:`.heatmaps`: SIM's intra- / inter-modal token scores as heatmaps, labels on drawings (numpy,
  OpenCV, PIL; ``pip install ".[viz]"``).
* :mod:`.ranklist`: a query triple and its top-k results with green / red borders (PIL).
* :mod:`.plots`: CMC, t-SNE, similarity histograms, training curves, image grids (matplotlib and
  scikit-learn, imported only when a plot is made; ``pip install ".[viz]"``).
"""
from .heatmaps import annotate, heat_legend_html, score_heatmap, score_maps_overlay
from .overlays import (
    ARROW_COLOUR,
    BOTH_COLOUR,
    INTER_COLOUR,
    INTRA_COLOUR,
    REFERENCE_COLOUR,
    auto_offset_scale,
    explanation_overlay,
    lam_arrow_scale,
    legend_html,
    offset_pixels,
    overlay_size,
    resize_for_overlay,
    sampling_overlay,
    selection_overlay,
)
from .ranklist import RankedTriple, ranklist_image, stack_rows
from .registration import reference_panel, registration_panels

__all__ = [
    "ARROW_COLOUR", "BOTH_COLOUR", "INTER_COLOUR", "INTRA_COLOUR", "REFERENCE_COLOUR", "RankedTriple",
    "annotate", "auto_offset_scale", "explanation_overlay", "heat_legend_html", "lam_arrow_scale", "legend_html",
    "offset_pixels", "overlay_size", "ranklist_image", "reference_panel", "registration_panels", "resize_for_overlay",
    "sampling_overlay", "score_heatmap", "score_maps_overlay", "selection_overlay", "stack_rows",
]
