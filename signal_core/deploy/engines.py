"""Feature engines: one callable interface over PyTorch, onnxruntime and OpenVINO.

Every engine may be called from several threads at once: the torch model's reduced-precision copy
is built once and only read (:class:`signal_core.model.precision.ShadowWeights`), an onnxruntime session's
``run`` is thread-safe, and OpenVINO gets one infer request per thread.

    engine = load_engine("model.onnx", kind="openvino")       # or kind="onnxruntime"
    engine = load_engine(model, kind="torch", precision="bf16")  # a SignalModel (or a weights file)
    feats = engine(rgb, nir, tir, cam_ids)  # [B, F] float32 numpy, the same values as extract_features

Inputs are numpy arrays or torch tensors: rgb / nir / tir [B, 3, H, W] (normalised as in training),
``cam_ids`` [B] with -1 for an unknown camera (the mean camera embedding), or None (all unknown).
Features are not L2-normalised, exactly as :meth:`SignalModel.extract_features` returns them.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils import optional
from .export import ExportInfo, export_info, read_export_info

ENGINES = ("torch", "onnxruntime", "openvino")


def require(package: str) -> Any:
    """Import an optional runtime package (onnx, onnxruntime, openvino), or raise a ModuleNotFoundError
    (an ImportError) that names the extra installing it."""
    return optional.require(package, f"the {package} engine")


class FeatureEngine:
    """Base class: input checks and conversion; subclasses implement :meth:`_run`."""

    kind = "base"

    def __init__(self, info: ExportInfo, precision: str):
        self.info = info
        self.precision = precision  # what the engine runs: "fp32", "bf16", "int8", ...
        self.image_size: tuple[int, int] = tuple(info.image_size)  # (H, W)
        self.feature_dim: int = info.feature_dim
        self.num_cameras: int = info.num_cameras

    def __call__(self, rgb, nir, tir, cam_ids=None) -> np.ndarray:
        """[B, 3, H, W] x 3 and [B] camera ids (-1 or None: unknown) -> [B, F] float32 features."""
        images = [self._image(x, name) for x, name in ((rgb, "rgb"), (nir, "nir"), (tir, "tir"))]
        b = images[0].shape[0]
        if any(x.shape[0] != b for x in images):
            raise ValueError(f"rgb, nir and tir must hold the same number of images, got "
                             f"{[x.shape[0] for x in images]}.")
        cams = self._cameras(cam_ids, b)
        return np.ascontiguousarray(self._run(*images, cams), dtype=np.float32)

    def _image(self, x, name: str) -> np.ndarray:
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        h, w = self.image_size
        if x.ndim != 4 or x.shape[1:] != (3, h, w):
            raise ValueError(f"{name} must be [B, 3, H, W] = [B, 3, {h}, {w}] images, got shape "
                             f"{list(x.shape)}: resize to {h} x {w} and normalise first.")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _cameras(self, cam_ids, b: int) -> np.ndarray:
        if cam_ids is None:
            return np.full(b, -1, dtype=np.int64)
        cams = (cam_ids.detach().cpu().numpy() if isinstance(cam_ids, torch.Tensor) else np.asarray(cam_ids))
        cams = cams.astype(np.int64).reshape(-1)
        if cams.shape[0] != b:
            raise ValueError(f"cam_ids must be [B] = [{b}] camera ids, got shape {list(cams.shape)}.")
        if self.num_cameras and cams.size and (cams.min() < -1 or cams.max() >= self.num_cameras):
            raise ValueError(f"camera ids must be in [0, {self.num_cameras - 1}] or -1 (unknown) for this model, "
                             f"got {cams.min()}..{cams.max()}.")
        return cams

    def _run(self, rgb: np.ndarray, nir: np.ndarray, tir: np.ndarray, cams: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(precision={self.precision!r}, image_size={self.image_size})"


class TorchEngine(FeatureEngine):
    """A :class:`SignalModel` (``extract_features``, in its inference precision)."""

    kind = "torch"

    def __init__(self, model, precision: str = "fp32"):
        self.model = model.eval()
        super().__init__(export_info(model), model.set_inference_precision(precision))
        self.device = next(model.parameters()).device

    def _run(self, rgb, nir, tir, cams):
        x = [torch.from_numpy(a).to(self.device) for a in (rgb, nir, tir)]
        return self.model.extract_features(*x, torch.from_numpy(cams).to(self.device)).cpu().numpy()


class OnnxRuntimeEngine(FeatureEngine):
    """An exported graph on onnxruntime (CUDA when onnxruntime has it, else the CPU)."""

    kind = "onnxruntime"

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None,
                 threads: int | None = None):
        ort = require("onnxruntime")
        info = _read_info(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.providers = self.session.get_providers()
        super().__init__(info, info.precision)

    def _run(self, rgb, nir, tir, cams):
        return self.session.run(["features"], {"rgb": rgb, "nir": nir, "tir": tir, "cam_ids": cams})[0]


class OpenVINOEngine(FeatureEngine):
    """An exported graph compiled by OpenVINO. Its CPU plugin picks bf16 by itself where the CPU
    has AMX (``inference_precision=None``); ``"f32"`` / ``"bf16"`` / ``"f16"`` force a precision."""

    kind = "openvino"

    def __init__(self, path: str | os.PathLike, device: str = "CPU", inference_precision: str | None = None,
                 threads: int | None = None):
        ov = require("openvino")
        info = _read_info(path)
        config = {}
        if inference_precision:
            config["INFERENCE_PRECISION_HINT"] = inference_precision
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        self.compiled = core.compile_model(str(path), device, config)
        self._requests = threading.local()  # an infer request holds its inputs and outputs: one per thread
        chosen = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # "f32", "bf16", ...
        precision = "int8" if info.precision == "int8" else {"f32": "fp32"}.get(chosen, chosen)
        super().__init__(info, precision)

    @property
    def request(self):
        """This thread's infer request (created on its first call)."""
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        return request

    def _run(self, rgb, nir, tir, cams):
        result = self.request.infer({"rgb": rgb, "nir": nir, "tir": tir, "cam_ids": cams})
        return result[self.compiled.output("features")]  # infer() copies its outputs (share_outputs=False)


def _read_info(path: str | os.PathLike) -> ExportInfo:
    onnx = require("onnx")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    return read_export_info(onnx.load(str(path), load_external_data=False))


def load_engine(source, kind: str = "onnxruntime", precision: str | None = None, **options) -> FeatureEngine:
    """A feature engine.

    Args:
        source: an exported ``.onnx`` file (onnxruntime, openvino), or for ``kind="torch"`` a
            :class:`SignalModel` or a weights file (``options["official_cfg"]``: the dataset's preset
            for the authors' ``.pth``, as :func:`signal_core.load_weights`).
        kind: "torch", "onnxruntime" or "openvino".
        precision: torch: "fp32" (default), "bf16" or "auto"; openvino: None (its own choice: bf16 on
            AMX), "fp32", "bf16" or "f16"; onnxruntime: runs the graph as exported (fp32 or int8).
        options: passed on (onnxruntime: providers, threads; openvino: device, threads).
    """
    if kind == "torch":
        model = source
        if isinstance(source, (str, os.PathLike)):
            from ..checkpoint import load_weights

            model = load_weights(source, options.pop("official_cfg", None), options.pop("device", "cpu"))
        return TorchEngine(model, precision or "fp32")
    if kind == "onnxruntime":
        return OnnxRuntimeEngine(source, **options)
    if kind == "openvino":
        hint = {"fp32": "f32", "bf16": "bf16", "f16": "f16", "f32": "f32"}.get(precision) if precision else None
        if precision and hint is None:
            raise ValueError("openvino precision must be fp32, bf16 or f16 (or None: its own choice), "
                             f"got {precision!r}.")
        return OpenVINOEngine(source, inference_precision=hint, **options)
    raise ValueError(f"engine must be one of {ENGINES}, got {kind!r}.")
