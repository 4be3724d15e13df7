"""Demo start-up: resolve the weights (signal_core.weights_source: a file, a Hub-style folder, ``hf-hub:`` or
``hf://``), load the model, read the gallery and
the example queries, build the :class:`~demo.search.SearchEngine`, and say which files the page serves.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from signal_core.data import DATASETS, label_from
from signal_core.data.images import ImageDecodeError
from signal_core.modalities import FOLDERS
from signal_core.retrieval.feature_store import FeatureStoreError, is_feature_folder
from signal_core.retrieval.gallery_open import is_index_spec
from signal_core.utils.atomic import atomic_write

from .feature_cache import FeatureCache, default_cache_dir
from .gallery import Gallery, GalleryEntry, GalleryError, load_gallery, read_triples_folder
from .options import (
    CREATE_ASSETS_HINT,
    DEFAULT_GALLERY,
    DEFAULT_WEIGHTS,
    MAX_EXAMPLES,
    REPO_ROOT,
    DemoOptions,
    StartupError,
    ensure_port_free,
)

log = logging.getLogger(__name__)


# --- weights and model ---------------------------------------------------------------------------
def resolve_weights(spec: str) -> Path:
    """The local weights file ``spec`` names, through the library's one resolver
    (:func:`signal_core.weights_source.resolve_weights`: a file, a Hub-style folder, ``hf-hub:owner/repo[@rev]``,
    ``hf://owner/repo[@rev]/file``); a relative path is also looked up under the repository root."""
    from signal_core.weights_source import WeightsSourceError, is_hub_name
    from signal_core.weights_source import resolve_weights as resolve

    if not is_hub_name(spec):
        path = Path(spec).expanduser()
        if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
            spec = str(REPO_ROOT / path)
        elif spec == DEFAULT_WEIGHTS and not path.exists() and not (REPO_ROOT / path).exists():
            raise StartupError(f"the bundled demo model {DEFAULT_WEIGHTS} is missing. {CREATE_ASSETS_HINT}")
    try:
        return resolve(spec)
    except WeightsSourceError as exc:
        raise StartupError(str(exc)) from None


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StartupError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto.")
    return torch.device(name)


def load_model(path: Path, dataset: str | None, device: torch.device, precision: str = "auto",
               registration: str | None = None):
    """Our safetensors checkpoint, or the authors' .pth with the ``dataset`` preset; on ``device``, in
    eval mode, with the inference precision set and ``registration`` (``--registration``; None: the
    checkpoint's own) in place of the stored one: the model's config, in the feature cache key, records it.

    Returns:
        (model, the precision in use, "fp32" or "bf16", for the feature cache key).
    """
    from signal_core import CheckpointError, SignalConfig, load_weights

    if path.suffix != ".safetensors" and not dataset:
        raise StartupError(f"{path.name} looks like the authors' checkpoint: pass --dataset "
                           f"({'|'.join(DATASETS)}) so that its config is known.")
    try:
        model = load_weights(path, SignalConfig.preset(dataset) if dataset else None, device, registration)
    except Exception as exc:  # noqa: BLE001 - CheckpointError, SafetensorError, UnpicklingError, ...: all bad files
        kind = "" if isinstance(exc, CheckpointError) else f"{exc.__class__.__name__}: "
        detail = " ".join(str(exc).split()) or "unreadable file"
        raise StartupError(f"could not load the model from {path} ({kind}{detail}); "
                           "is it a Signal checkpoint?") from None
    return model, model.set_inference_precision(precision)


def resolve_folder(spec: str | None) -> Path | None:
    """A folder path; relative paths are also looked up under the repository root."""
    if not spec:
        return None
    path = Path(spec).expanduser()
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    return path


def load_examples(folder: Path | None, limit: int = MAX_EXAMPLES) -> list[GalleryEntry]:
    """Up to ``limit`` example query triples from a triples folder (none if absent or unreadable)."""
    if folder is None or not folder.is_dir():
        if folder is not None:
            log.warning("no example queries: %s does not exist", folder)
        return []
    try:
        entries = read_triples_folder(folder)
    except GalleryError as exc:
        log.warning("no example queries: %s", exc)
        return []
    step = max(1, len(entries) // limit)  # spread over the identities rather than the first few
    return entries[::step][:limit]


def stage_examples(examples: Sequence[GalleryEntry], folder: Path) -> list[GalleryEntry]:
    """Copies of the example triples in ``folder/<RGB|NI|TI>/`` (same file names: they carry the identity).

    The page then serves one folder for them instead of one static path per file: gradio checks
    every file a search returns against each static path, so a hundred of them cost as much as the
    search itself.
    """
    staged = []
    for entry in examples:
        panel = len(set(entry.paths)) == 1  # one RGBNT100 image holding the three modalities: one copy
        paths = []
        for modality_folder, source in zip(("panels",) * 3 if panel else FOLDERS, entry.paths):
            target = folder / modality_folder / Path(source).name
            if not target.is_file():
                atomic_write(target, lambda tmp, src=source: shutil.copyfile(src, tmp), suffix=target.suffix)
            paths.append(str(target))
        staged.append(dataclasses.replace(entry, paths=tuple(paths)))
    return staged


def build_engine(options: DemoOptions, progress: bool = True, check_port: bool = False):
    """Load everything the page needs (with ``check_port``, first make sure the port is free).

    Returns:
        (SearchEngine, example query entries).

    Raises:
        StartupError: with a message that says what to do.
    """
    device = resolve_device(options.device)
    weights = resolve_weights(options.weights)
    if check_port:
        ensure_port_free(options.host, options.port)
    if is_index_spec(options.gallery):
        engine = _saved_index_engine(options, weights, device)
        examples = load_examples(resolve_folder(options.queries))
        return engine, stage_examples(examples, engine.served.subfolder("examples"))
    gallery_dir = resolve_folder(options.gallery)
    if gallery_dir is None or not gallery_dir.is_dir():
        if options.gallery == DEFAULT_GALLERY:
            raise StartupError(f"the bundled demo gallery {DEFAULT_GALLERY} is missing. {CREATE_ASSETS_HINT}")
        raise StartupError(f"gallery folder {gallery_dir} does not exist.")
    if is_feature_folder(gallery_dir):
        engine = _feature_folder_engine(options, gallery_dir, weights, device)
    else:
        engine = _gallery_engine(options, gallery_dir, weights, device, progress)
    return engine, stage_examples(load_examples(resolve_folder(options.queries)), engine.served.subfolder("examples"))


def load_features_engine(options: DemoOptions, model):
    """``(features_fn, its cache id, its words for the page)`` of ``--engine`` / ``SIGNAL_ENGINE``;
    ``(None, None, "")`` for torch (the model itself computes the features)."""
    if options.engine == "torch":
        return None, None, ""
    from signal_core.deploy.engine_choice import EngineError, engine_for_model

    try:
        engine = engine_for_model(model, options.engine, options.onnx)
    except EngineError as exc:
        raise StartupError(str(exc).replace("--onnx", "--onnx / SIGNAL_ONNX")) from None
    ident = f"{engine.kind}-{engine.precision}-{engine.onnx_sha256}"
    return engine.features, ident, f" · features: {engine.label()}, SIM / LAM overlays: torch"


def _gallery_engine(options: DemoOptions, gallery_dir: Path, weights: Path, device: torch.device, progress: bool):
    """A triples or dataset folder: features from the cache, or computed once."""
    from .search import SearchEngine

    try:
        gallery = load_gallery(gallery_dir, options.dataset)
    except GalleryError as exc:
        raise StartupError(str(exc)) from None
    model, precision = load_model(weights, options.dataset, device, options.precision, options.registration)
    features_fn, features_id, words = load_features_engine(options, model)
    cache = FeatureCache(options.cache_dir or default_cache_dir())
    try:
        return SearchEngine.from_gallery(
            model, gallery, device, weights=weights, cache=cache, batch_size=options.batch_size, progress=progress,
            description=f"model {weights.name} · {page_words(gallery.source, gallery_dir)} · {device.type} · "
                        f"{precision}{words}",
            features_fn=features_fn, features_id=features_id)
    except ImageDecodeError as exc:
        raise StartupError(f"a gallery image cannot be read: {exc}") from None


def _feature_folder_engine(options: DemoOptions, folder: Path, weights: Path, device: torch.device):
    """A feature folder of ``python -m train.extract``, searched through the gallery index."""
    from .search import SearchEngine

    model, precision = load_model(weights, options.dataset, device, options.precision, options.registration)
    features_fn, _, words = load_features_engine(options, model)
    try:
        return SearchEngine.from_feature_folder(
            model, folder, device, weights=weights,
            description=f"model {weights.name} · feature folder {folder.name} · {device.type} · {precision}{words}",
            features_fn=features_fn)
    except FeatureStoreError as exc:
        raise StartupError(str(exc)) from None


def page_words(source: str, folder: Path) -> str:
    """``source`` ("triples folder /srv/data/gallery") as the page says it: the folder by its name only (the
    page is public; the server's folders are not its visitors' business)."""
    return source.replace(str(folder), folder.name)


def _saved_index_engine(options: DemoOptions, weights: Path, device: torch.device):
    """A saved gallery index (a .sgi file or a milvus: URI, ``python -m train.extract ... --index``): its rows
    are the gallery; it must hold features of these weights."""
    from signal_core.retrieval.folder_features import check_registration
    from signal_core.retrieval.gallery_open import index_rows, open_index
    from signal_core.utils.hashing import sha256_file

    from .search import SearchEngine
    from .served import ServedFolder
    from .thumbnails import ThumbnailStore

    model, precision = load_model(weights, options.dataset, device, options.precision, options.registration)
    features_fn, _, words = load_features_engine(options, model)
    try:
        index = open_index(options.gallery, dim=model.cfg.feature_dim, model_sha256=sha256_file(weights))
        check_registration(index.info, model.cfg, f"the gallery index {options.gallery}")
        rows = index_rows(index)
    except ValueError as exc:  # IndexFileError, MilvusGalleryError, MissingExtraError, an index without rows, or
        raise StartupError(str(exc)) from None  # features of another registration
    gallery = Gallery([GalleryEntry(tuple(r["paths"]), label_from(r["pid"]), label_from(r["camid"])) for r in rows],
                      f"gallery index {options.gallery}")
    served = ServedFolder()
    thumbs = served.subfolder("thumbs")
    engine = SearchEngine(model, gallery, index, device, ThumbnailStore(thumbs, fallback=thumbs),
                          f"model {weights.name} · gallery index {options.gallery} ({index.kind}) · {device.type} · "
                          f"{precision}{words}", served, features_fn)
    engine.cache_hit, engine.cache_path, engine.weights_path = True, None, weights
    return engine


def served_paths(engine, examples: Sequence[GalleryEntry]) -> list[str]:
    """What the page may serve, and nothing more: this gallery's thumbnail folder(s), the folder of
    per-search images (overlays, and the copies of the example queries: :func:`stage_examples`),
    and any example query file outside it."""
    paths = {str(Path(p).resolve()) for e in examples for p in e.paths}
    if engine.thumbnails is not None:
        paths.update(str(p.resolve()) for p in engine.thumbnails.folders)
    paths.add(str(engine.served.directory))
    return sorted(p for p in paths if not any(Path(p).is_relative_to(q) and p != q for q in paths))


def blocked_paths(engine) -> list[str]:
    """Files never to serve, even if a served folder held them: the feature cache file and the weights."""
    paths = [getattr(engine, "cache_path", None), getattr(engine, "weights_path", None)]
    return [str(Path(p).resolve()) for p in paths if p is not None]
