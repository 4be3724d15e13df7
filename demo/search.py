"""The demo's search logic, free of any UI code: encode a query triple, rank the gallery, explain.

Ranking is one matrix product of the L2-normalised query feature with the L2-normalised gallery
features (cosine similarity) and a top-k. A missing modality (no image given, or switched off) is
zeroed as in the missing-modality protocol: in the query, and by default in the gallery too
(:mod:`demo.missing_gallery`); the result says which ones were, on which side. Each match's similarity is split by
feature part (RGB, NIR, TIR class tokens, fused SIM tokens: :mod:`signal_core.metrics.parts`), and a
modality switch can turn given modalities off, the ranks they had with all given modalities kept
for comparison (:mod:`demo.explain`).
"""
from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from signal_core.data import UNKNOWN, label_from, parse_triple_name
from signal_core.data.images import ImageDecodeError, ImageSource, decode_image
from signal_core.metrics.parts import PartScore, feature_layout, part_scores
from signal_core.modalities import LABELS, MODALITIES
from signal_core.retrieval.feature_store import FeatureStoreError, read_features
from signal_core.retrieval.folder_features import check_registration
from signal_core.retrieval.index import AUTO_EXACT_MAX_ROWS, GalleryIndex
from signal_core.retrieval.split_features import run_features
from signal_core.utils.hashing import sha256_file
from signal_core.utils.messages import quoted, shown

from .explain import Drawings, draw_explanation, gallery_vectors, part_standing, ranks_of, switched_images
from .feature_cache import FeatureCache, cache_key, gallery_fingerprint, model_fingerprint
from .features import InputTransform, extract_gallery_features, triple_batch
from .gallery import Gallery, GalleryEntry, camera_tensor, load_entry_images
from .missing_gallery import ZeroedGalleries
from .served import ServedFolder
from .thumbnails import ThumbnailStore

log = logging.getLogger(__name__)
UNKNOWN_CAMERA = "unknown"
MAX_TOP_K = 50  # most results one search returns (the page's slider goes up to this)


class QueryError(ValueError):
    """A query the demo cannot run (no image, unreadable file, bad camera); the message is for the user."""


class ImageRefused(QueryError):
    """A query image the decoder refused (not an image, another format, too many pixels); ``source`` is it."""

    def __init__(self, message: str, source: ImageSource):
        super().__init__(message)
        self.source = source


@dataclass
class RankedMatch:
    """One ranked gallery entry."""

    rank: int  # 1-based
    index: int  # row in the gallery
    pid: int  # UNKNOWN (-1) when not known
    camid: int  # 0-based; UNKNOWN when not known
    similarity: float  # cosine similarity of the features
    is_match: bool | None  # same identity as the query; None when either is unknown
    thumbnail: str | None = None
    parts: dict[str, PartScore] = field(default_factory=dict)  # "rgb", "nir", "tir", "fused" -> cosine, share
    previous_rank: int | None = None  # rank with all given modalities (a switch was off; None: not found)
    name: str = ""  # the gallery entry's name (its RGB file name)
    standing: dict[str, tuple[int, float]] = field(default_factory=dict)  # part -> (its rank in the gallery by
    # that part alone, z-score of its part cosine against the gallery); empty when searched through an index


@dataclass
class SearchAnswer:
    """What one search returns."""

    matches: list[RankedMatch]
    missing: tuple[str, ...]  # modalities not given (zeroed), e.g. ("nir",)
    query_pid: int  # from the query's file names; UNKNOWN when none names one
    camera: int  # 0-based camera used, UNKNOWN = mean camera embedding
    drawings: Drawings | None = None  # the query's explanation views (explain=True)
    seconds: float = 0.0
    switched_off: tuple[str, ...] = ()  # given modalities the switch turned off (zeroed as well)
    previous_depth: int = 0  # previous ranks were looked up among this many results
    gallery_zeroed: tuple[str, ...] = ()  # modalities zeroed in the gallery too (the missing-modality protocol)

    @property
    def overlays(self) -> list[np.ndarray]:
        """The query's "kept tokens" view (RGB, NIR, TIR); empty without explain."""
        return [] if self.drawings is None else self.drawings.kept

    @property
    def num_correct(self) -> int | None:
        return None if self.query_pid == UNKNOWN else sum(bool(m.is_match) for m in self.matches)


class SearchEngine:
    """A loaded model, a gallery and its features; thread-safe :meth:`search` and :meth:`explain_entry`.

    Build with :meth:`from_gallery` (features from the cache or computed once).
    """

    def __init__(self, model, gallery: Gallery, gallery_features: torch.Tensor | GalleryIndex,
                 device: str | torch.device = "cpu", thumbnails: ThumbnailStore | None = None, description: str = "",
                 served: ServedFolder | None = None, features_fn=None):
        """``gallery_features``: [N, F] features (ranked by one matrix product) or a GalleryIndex (or a
        MilvusGallery: signal_core.retrieval.gallery_open) of N rows;
        ``features_fn``: a feature engine (signal_core.deploy.engines) for the query features instead of the
        model (the model still draws the SIM / LAM overlays)."""
        self.features_fn = features_fn
        if len(gallery_features) != len(gallery):
            raise ValueError(f"{len(gallery_features)} features for {len(gallery)} gallery entries.")
        self.model = model.eval()
        self.gallery = gallery
        self.device = torch.device(device)
        # a GalleryIndex or MilvusGallery searches itself; a feature tensor is searched here
        self.index = None if isinstance(gallery_features, torch.Tensor) else gallery_features
        self.gallery_features = (None if self.index is not None
                                 else F.normalize(gallery_features.float(), dim=1).to(self.device))
        self.zeroed = (None if self.index is not None else ZeroedGalleries(self.gallery_features, lambda code: (
            extract_gallery_features(self.model, self.gallery, self.device, progress=False,
                                     features_fn=self.features_fn, missing=code))))
        self.thumbnails = thumbnails
        self.description = description
        self.served = served if served is not None else ServedFolder()  # per-search images for the page
        self.image_size = tuple(model.cfg.image_size)
        self.grid_size = tuple(model.cfg.grid_size)
        self.transform = InputTransform(self.image_size)
        self.num_cameras = model.num_cameras
        self.layout = feature_layout(model.cfg.feature_dim, model.cfg.embed_dim)  # columns of each part
        self.gallery_name = "default gallery"  # what answers say they searched ("your gallery 'x.zip'")
        self.gallery_id = secrets.token_hex(8)  # tells a result list of this gallery from one of another

    # --- building ------------------------------------------------------------------------------
    @classmethod
    def from_gallery(cls, model, gallery: Gallery, device: str | torch.device = "cpu",
                     weights: str | os.PathLike | None = None,
                     cache: FeatureCache | None = None, batch_size: int = 32, progress: bool = True,
                     description: str = "", served: ServedFolder | None = None, features_fn=None,
                     features_id: str | None = None) -> SearchEngine:
        """Gallery features from ``cache`` (keyed on model, gallery, the model's inference precision,
        device, input size) or computed in batches with a progress bar and stored.

        Thumbnails go to ``<cache dir>/thumbs-<key>``, or, when that cannot be written, to
        ``served``'s ``thumbs`` folder (``served``: default a new per-process folder).
        ``features_fn`` (a feature engine) computes the gallery and query features; ``features_id``
        names it in the cache key (in place of the model's precision).
        """
        cache = cache or FeatureCache()
        served = served if served is not None else ServedFolder()
        warn_unknown_cameras(gallery, model.num_cameras)
        model_fp = model_fingerprint(weights, model.cfg.to_json(), None if weights else model.state_dict())
        key = cache_key(model_fp, gallery_fingerprint(gallery), features_id or model.inference_precision,
                        torch.device(device).type, model.cfg.image_size)
        feats, hit = cache.get_or_compute(
            key, len(gallery), lambda: extract_gallery_features(model, gallery, device, batch_size=batch_size,
                                                                progress=progress, features_fn=features_fn))
        log.info("gallery features: %s (%s)", "from the cache" if hit else "computed", cache.path(key))
        thumbnails = ThumbnailStore(cache.directory / f"thumbs-{key[:16]}", fallback=served.subfolder("thumbs"))
        engine = cls(model, gallery, feats, device, thumbnails, description, served, features_fn)
        engine.cache_hit, engine.cache_path, engine.weights_path = hit, cache.path(key), weights
        return engine

    @classmethod
    def from_feature_folder(cls, model, folder: str | os.PathLike, device: str | torch.device = "cpu",
                            weights: str | os.PathLike | None = None, description: str = "",
                            served: ServedFolder | None = None, features_fn=None) -> SearchEngine:
        """A prebuilt gallery (``python -m train.extract``): below ``AUTO_EXACT_MAX_ROWS`` (50,000) rows its
        features are searched as a gallery folder's are (so a query's missing modalities are zeroed in the
        gallery too), above through an IVF :class:`GalleryIndex`; thumbnails are made only for the results shown.

        Raises:
            FeatureStoreError: not a finished, intact feature folder, or made with other weights or another
                registration than ``model``'s.
        """
        features, rows, manifest = read_features(folder)
        made_with = manifest.get("model", {}).get("sha256")
        if weights is not None and made_with and made_with != sha256_file(weights):
            raise FeatureStoreError(f"the features in {folder} were made with other weights "
                                    f"({manifest['model'].get('path')}); extract them again with {weights}.")
        try:
            check_registration(manifest["settings"], model.cfg, f"the feature folder {folder}")
        except ValueError as exc:
            raise FeatureStoreError(str(exc)) from None
        gallery = Gallery([GalleryEntry(tuple(r["paths"]), label_from(r.get("pid")), label_from(r.get("camid")))
                           for r in rows],
                          f"feature folder {folder}")
        warn_unknown_cameras(gallery, model.num_cameras)
        index = (torch.from_numpy(features) if len(features) < AUTO_EXACT_MAX_ROWS
                 else GalleryIndex.build(features, kind="auto"))
        del features
        served = served if served is not None else ServedFolder()
        thumbs = served.subfolder("thumbs")
        engine = cls(model, gallery, index, device, ThumbnailStore(thumbs, fallback=thumbs), description, served,
                     features_fn)
        engine.cache_hit, engine.cache_path, engine.weights_path = True, None, weights
        return engine

    def sharing(self, gallery: Gallery, gallery_features: torch.Tensor, thumbnails: ThumbnailStore,
                description: str = "", name: str = "your gallery") -> SearchEngine:
        """Another engine over ``gallery`` (a visitor's upload, called ``name`` in answers) with this
        engine's model, device, served folder and feature engine (the model is loaded once)."""
        engine = type(self)(self.model, gallery, gallery_features, self.device, thumbnails, description, self.served,
                            self.features_fn)
        engine.gallery_name = name
        engine.cache_hit, engine.cache_path, engine.weights_path = True, None, getattr(self, "weights_path", None)
        return engine

    # --- inputs -------------------------------------------------------------------------------
    @property
    def camera_choices(self) -> list[str]:
        """"unknown" and the model's cameras, 1-based as in file names (camK)."""
        return [UNKNOWN_CAMERA] + [str(k) for k in range(1, self.num_cameras + 1)]

    def parse_camera(self, camera, sources: Sequence[ImageSource | None] = ()) -> int:
        """The 0-based camera id from "unknown" / None / "" (-> UNKNOWN) or a 1-based number.

        Args:
            sources: the query's inputs; an error message names the query file.
        """
        if camera is None or str(camera).strip().lower() in ("", UNKNOWN_CAMERA, "none"):
            return UNKNOWN
        query = query_file_name(sources)
        of_query = f" given for the query '{shown(query)}'" if query else ""
        try:
            k = int(str(camera).strip())
        except ValueError:
            raise QueryError(f"camera {quoted(camera)}{of_query}: the camera must be 'unknown' or a number "
                             f"from 1 to {self.num_cameras}.") from None
        if not 1 <= k <= self.num_cameras:
            raise QueryError(f"camera {k}{of_query} does not exist for this model: use a camera from 1 to "
                             f"{self.num_cameras}, or 'unknown' (mean camera embedding).")
        return k - 1

    def parse_top_k(self, top_k) -> int:
        """``top_k`` as an int from 1 to min(MAX_TOP_K, gallery size); a fraction or anything else is refused."""
        limit = min(MAX_TOP_K, len(self.gallery))
        try:
            value = float(top_k)
        except (TypeError, ValueError):
            value = float("nan")
        if isinstance(top_k, bool) or not value.is_integer() or not 1 <= value <= limit:
            raise QueryError(f"top k must be a whole number from 1 to {limit}, got {quoted(top_k)}.")
        return int(value)

    def decode_query(self, sources: Sequence[ImageSource | None]) -> list[np.ndarray | None]:
        """Decode the (RGB, NIR, TIR) inputs; None or "" means missing.

        Raises:
            QueryError: all three missing, or one cannot be read (the message names the modality).
        """
        if len(sources) != 3:
            raise QueryError(f"a query needs three inputs (RGB, NIR, TIR), got {len(sources)}.")
        images: list[np.ndarray | None] = []
        for modality, source in zip(MODALITIES, sources):
            if source is None or (isinstance(source, str) and not source.strip()):
                images.append(None)
                continue
            try:
                images.append(decode_image(source))
            except ImageDecodeError as exc:
                raise ImageRefused(f"{LABELS[modality]} input: {exc}", source) from None
        if all(img is None for img in images):
            raise QueryError("Give at least one image (RGB, NIR or TIR) to search with.")
        return images

    @staticmethod
    def query_identity(sources: Sequence[ImageSource | None]) -> int:
        """The identity in the query's file names (``PPPPPP_camK_*``), if any of them has one, else UNKNOWN."""
        for source in sources:
            if isinstance(source, (str, os.PathLike)) and str(source).strip():
                pid, _ = parse_triple_name(Path(source).name)
                if pid != UNKNOWN:
                    return pid
        return UNKNOWN

    # --- search -------------------------------------------------------------------------------
    def search(self, rgb: ImageSource | None, nir: ImageSource | None, tir: ImageSource | None,
               top_k: int = 10, camera=None, explain: bool = True,
               switched_on: Sequence[str] | None = None, gallery_too: bool = True) -> SearchAnswer:
        """Rank the gallery for one query triple; every match's score split by feature part.

        Args:
            rgb, nir, tir: image paths / arrays / PIL images; None for a missing modality.
            top_k: how many results, a whole number from 1 to min(MAX_TOP_K, gallery size).
            camera: "unknown" / None (mean camera embedding) or the 1-based camera number.
            explain: also draw the query's two explanation views.
            switched_on: the modalities to search with (None: all); a given modality switched off is
                zeroed too, and each match's rank with all given modalities is kept (a second,
                feature-only encoder pass).
            gallery_too: zero the query's missing and switched-off modalities in the gallery too, as the
                missing-modality protocol does (:mod:`demo.missing_gallery`; not through a saved index or a
                feature folder of 50,000 triples or more).

        Raises:
            QueryError: nothing to search with, an unreadable image, a bad top k or camera.
        """
        start = time.perf_counter()
        sources = (rgb, nir, tir)
        k = self.parse_top_k(top_k)
        camid = self.parse_camera(camera, sources)
        given = self.decode_query(sources)
        images, off = switched_images(given, switched_on)
        if all(img is None for img in images):
            raise QueryError("every given modality is switched off: switch on at least one of "
                             f"{', '.join(LABELS[m] for m, img in zip(MODALITIES, given) if img is not None)}.")
        cams = None if camid == UNKNOWN else torch.tensor([camid])
        missing = tuple(m for m, img in zip(MODALITIES, given) if img is None)
        zeroed = tuple(m for m, img in zip(MODALITIES, images) if img is None) if self.zeroed and gallery_too else ()
        feats = self.zeroed.features(zeroed) if zeroed else self.gallery_features
        feature, explanation = self._encode(triple_batch(images, self.transform), cams, explain)
        scores, indices = self._rank(feature, k, feats)
        parts = part_scores(feature[0], gallery_vectors(feats, self.index, indices), self.layout)
        standing = (None if self.index is not None  # an index holds no whole-gallery part table
                    else part_standing(feats, feature[0], indices, self.layout))
        previous, depth = [None] * len(indices), 0
        if off:
            all_given, _ = self._encode(triple_batch(given, self.transform), cams, explain=False)
            before = self.zeroed.features(missing) if zeroed else self.gallery_features
            previous, depth = ranks_of(before, self.index, all_given, indices, k)
        query_pid = self.query_identity(sources)
        matches = []
        for rank, (score, index) in enumerate(zip(scores.tolist(), indices.tolist()), start=1):
            entry = self.gallery.entries[index]
            same = None if UNKNOWN in (query_pid, entry.pid) else entry.pid == query_pid
            thumb = self.thumbnails.path(index, entry) if self.thumbnails is not None else None
            matches.append(RankedMatch(rank, index, entry.pid, entry.camid, score, same, thumb,
                                       parts=parts.row(rank - 1), previous_rank=previous[rank - 1], name=entry.name,
                                       standing={} if standing is None else standing.row(rank - 1)))
        drawings = draw_explanation(images, explanation, self.grid_size, self.image_size) if explain else None
        return SearchAnswer(matches, missing, query_pid, camid, drawings, time.perf_counter() - start, off, depth,
                            zeroed)

    def explain_entry(self, index: int) -> Drawings:
        """Both explanation views of gallery entry ``index`` (encoded with its camera if known)."""
        entry = self.gallery.entries[int(index)]
        try:
            images = list(load_entry_images(entry))
        except ImageDecodeError as exc:
            raise QueryError(f"gallery entry {shown(entry.name)}: {exc}") from None
        cams = camera_tensor([entry.camid], self.num_cameras)
        _, explanation = self._encode(triple_batch(images, self.transform), cams, explain=True)
        return draw_explanation(images, explanation, self.grid_size, self.image_size)

    # --- internals ----------------------------------------------------------------------------
    def _rank(self, feature: torch.Tensor, k: int, feats: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine scores and gallery rows of the top ``k`` (best first) among ``feats`` (or the index)."""
        if self.index is not None:
            found = self.index.search(F.normalize(feature.float(), dim=1).cpu().numpy(), k)
            keep = found.rows[0] >= 0
            return torch.from_numpy(found.scores[0][keep]), torch.from_numpy(found.rows[0][keep])
        return torch.topk(feats @ F.normalize(feature, dim=1)[0], k)

    def _encode(self, batch: dict, cams: torch.Tensor | None, explain: bool):
        inputs = [batch[m].to(self.device) for m in MODALITIES]
        cams = None if cams is None else cams.to(self.device)
        # No lock: every engine may be called from several threads at once (signal_core.deploy.engines), so
        # searches running at once (the page's concurrency, each with cores / concurrency threads) use
        # every core, whatever the precision or engine.
        explanation = self.model.explain(*inputs, cams) if explain else None
        if self.features_fn is not None:  # the engine's features; the overlays stay torch's
            return run_features(self.features_fn, *inputs, cams).to(self.device), explanation
        if explain:
            return explanation.features, explanation
        return self.model.extract_features(*inputs, cams), None



def query_file_name(sources: Sequence[ImageSource | None]) -> str | None:
    """The file name of the first query input given as a path, if any."""
    for source in sources:
        if isinstance(source, (str, os.PathLike)) and str(source).strip():
            return Path(source).name
    return None


def warn_unknown_cameras(gallery: Gallery, num_cameras: int) -> None:
    """Log the gallery files whose camera the model does not have (they use the mean camera embedding)."""
    names = [e.name for e in gallery.entries if e.camid != UNKNOWN and not 0 <= e.camid < num_cameras]
    if names:
        log.warning("%d gallery file(s) name a camera this model does not have (cameras 1-%d), e.g. %s: "
                    "they are encoded with the mean camera embedding", len(names), num_cameras, names[:3])
