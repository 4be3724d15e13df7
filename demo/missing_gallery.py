"""The gallery's side of the missing-modality protocol: gallery features with the query's missing modalities
zeroed too.

In the missing-modality test (:mod:`signal_core.retrieval.split_features`) a modality missing from the
query is missing from the gallery as well: both sides' inputs of it are zeroed. A query that lacks a
modality (not given, or switched off on the page) compared with gallery features made from all three
compares unlike with unlike: with TIR off, a person's query ranks vehicles first on the bundled demo.
:class:`ZeroedGalleries` computes, once per setting and on first use, the gallery's features with the
same modalities zeroed (:func:`demo.features.extract_gallery_features` with ``missing``), and keeps them
in memory (at most the six settings). A gallery searched through a saved index or an IVF index (a feature
folder of 50,000 triples or more) keeps its features (its images are not re-encoded at search time): the
answer says so.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from signal_core.modalities import missing_code

log = logging.getLogger(__name__)
Compute = Callable[[str], torch.Tensor]  # missing setting ("t", "nt", ...) -> [N, F] features, not normalised


class ZeroedGalleries:
    """L2-normalised gallery features per missing-modality setting; ``full`` for none missing."""

    def __init__(self, full: torch.Tensor, compute: Compute):
        self.full, self._compute = full, compute
        self._kept: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()  # one computation at a time; searches of other settings wait

    def features(self, zeroed: tuple[str, ...] | list[str]) -> torch.Tensor:
        """The gallery features with the modalities ``zeroed`` (names, e.g. ("tir",)) zeroed in every triple."""
        code = missing_code(zeroed)
        if not code:
            return self.full
        with self._lock:
            if code not in self._kept:
                start = time.perf_counter()
                self._kept[code] = F.normalize(self._compute(code).float(), dim=1).to(self.full.device)
                log.info("gallery features without %s: computed in %.1f s", code, time.perf_counter() - start)
            return self._kept[code]
