"""The feature engine of a loaded model, for the command lines and the demo:
``engine_for_model(model, "onnxruntime", onnx="model.onnx")``.

- ``torch``: the model itself (``extract_features`` in its inference precision).
- ``onnxruntime`` / ``openvino`` with ``onnx``: an exported graph (``python -m train.export``), checked
  against the model: the same input size, feature size and cameras, and, when the graph records it,
  the same weights (a graph of other weights would give features that the rest of the run, labelled
  with these weights, silently mixes up); and, whatever its metadata says, inputs of the model's image size
  with a free batch, and finite weights (``graph_check.py``).
- ``onnxruntime`` / ``openvino`` without ``onnx``: the model exported fp32 on the fly into a cache
  (``$SIGNAL_ONNX_CACHE`` or ``~/.cache/signal-onnx``), keyed on the weights' digest, and reused. An
  export is deterministic from the weights and takes seconds (ViT-B/16: ~10 s), so asking for a file
  the program can make itself would only add a step; int8 needs calibration data, so an int8 graph
  is always given with ``onnx``.

Every problem is an :class:`EngineError` (a ValueError) with one line that says what to do.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .engines import ENGINES, FeatureEngine, load_engine
from .export import export_onnx, model_digest, read_export_info
from .graph_check import check_graph_inputs, check_graph_weights

log = logging.getLogger(__name__)


class EngineError(ValueError):
    """The engine cannot be used with this model; the message says what to do."""


@dataclass
class ModelEngine:
    """An engine, and what a run should record about it."""

    features: FeatureEngine  # features(rgb, nir, tir, cam_ids) -> [B, F] float32 numpy
    kind: str  # "torch", "onnxruntime" or "openvino"
    precision: str  # what it runs: "fp32", "bf16", "int8"
    onnx: Path | None = None  # the graph used (given or cached)
    onnx_sha256: str | None = None

    def record(self) -> dict:
        """``{"engine", "onnx_sha256"}`` for manifests and cache keys."""
        return {"engine": self.kind, "onnx_sha256": self.onnx_sha256}

    def label(self) -> str:
        return self.kind if self.onnx is None else f"{self.kind} ({self.onnx.name}, {self.precision})"


def engine_for_model(model, kind: str = "torch", onnx: str | os.PathLike | None = None,
                     precision: str | None = None, cache_dir: str | os.PathLike | None = None,
                     **options) -> ModelEngine:
    """The engine ``kind`` for ``model`` (see the module docstring).

    Args:
        model: a loaded :class:`SignalModel` (eval mode; torch: its inference precision is used).
        onnx: an exported ``.onnx`` for onnxruntime / openvino; None: exported into the cache.
        precision: openvino only (None: its own choice, bf16 on AMX); the others run as given.
        options: passed to :func:`load_engine` (threads, providers, device).

    Raises:
        EngineError: unknown engine, missing runtime package, onnx file missing, unreadable, or made
            for another model; an exported graph for a model with registration (not in the graph).
    """
    if kind not in ENGINES:
        raise EngineError(f"unknown engine {kind!r}: use one of {', '.join(ENGINES)}.")
    if kind == "torch":
        if onnx is not None:
            raise EngineError("--onnx is for --engine onnxruntime or openvino; the torch engine runs the weights.")
        engine = load_engine(model, kind="torch", precision=model.inference_precision)
        return ModelEngine(engine, kind, engine.precision)
    if model.cfg.registration != "none":  # the graph has no registration: its features would be another model's
        raise EngineError(f"--engine {kind} runs an exported graph without the model's registration "
                          f"'{model.cfg.registration}': use --engine torch, or --registration none (features "
                          "without it).")
    _require(kind)
    digest = model_digest(model)
    path = _given_onnx(onnx, model, digest) if onnx is not None else _cached_onnx(model, digest, cache_dir)
    try:
        engine = load_engine(path, kind=kind, precision=precision, **options)
    except (ImportError, RuntimeError) as exc:
        raise EngineError(f"{kind} cannot run {path} ({_one_line(exc)}).") from None
    from ..utils.hashing import sha256_file

    return ModelEngine(engine, kind, engine.precision, Path(path), sha256_file(path))


def _require(kind: str) -> None:
    from .engines import require

    try:
        require(kind)
        require("onnx")
    except ImportError as exc:
        raise EngineError(f"{str(exc).rstrip('.')}; or use --engine torch.") from None


def _given_onnx(onnx: str | os.PathLike, model, digest: str) -> Path:
    """``onnx`` checked against ``model``: geometry, cameras, and weights where recorded."""
    import onnx as onnx_lib

    path = Path(onnx).expanduser()
    if not path.is_file():
        raise EngineError(f"ONNX file {path} not found: export one with python -m train.export --weights W --out "
                          f"{path.name}, or leave --onnx out to export the weights on the fly.")
    try:
        proto = onnx_lib.load(str(path), load_external_data=False)
        info = read_export_info(proto)
    except ValueError as exc:
        raise EngineError(f"{path}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends: not an ONNX file
        raise EngineError(f"{path} is not a readable ONNX file ({exc.__class__.__name__}); export it again with "
                          "python -m train.export.") from None
    ours = (tuple(model.cfg.image_size), model.cfg.feature_dim, model.num_cameras)
    theirs = (tuple(info.image_size), info.feature_dim, info.num_cameras)
    if ours != theirs:
        raise EngineError(f"{path} was exported for another model: {_geometry(*theirs)}, but the weights give "
                          f"{_geometry(*ours)}; export it from these weights with python -m train.export.")
    if info.weights_digest and info.weights_digest != digest:
        raise EngineError(f"{path} was exported from other weights than the ones given (same geometry, other "
                          "values); export it from these weights with python -m train.export.")
    try:
        check_graph_inputs(proto, path, ours[0])
        check_graph_weights(proto, path)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    return path


def _geometry(size, dim: int, cams: int) -> str:
    return f"{size[0]} x {size[1]} images, {dim}-d features, {cams} cameras"


def _cached_onnx(model, digest: str, cache_dir) -> Path:
    """The model's fp32 graph from the cache, exported there first if absent."""
    folder = Path(cache_dir or os.environ.get("SIGNAL_ONNX_CACHE") or Path.home() / ".cache" / "signal-onnx")
    path = folder / f"{digest[:32]}.onnx"
    if path.is_file():
        try:
            _given_onnx(path, model, digest)
            return path
        except EngineError:
            log.warning("cached ONNX file %s is damaged or stale: exporting it again", path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        log.info("exporting the model to ONNX (once, cached): %s", path)
        export_onnx(model, path)
    except OSError as exc:
        raise EngineError(f"cannot write the ONNX cache {folder} ({exc.strerror or exc}): set SIGNAL_ONNX_CACHE "
                          "to a writable folder, or export with python -m train.export and pass --onnx.") from None
    return path


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or exc.__class__.__name__
