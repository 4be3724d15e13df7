"""Deployment: ONNX export, feature engines (torch, onnxruntime, OpenVINO), the engine choice, int8.

    export         the test-time feature as one traceable module, ONNX export with its metadata
    engines        FeatureEngine: one callable over torch, onnxruntime and OpenVINO, thread-safe
    engine_choice  the engine a command line or the demo asks for (engine_for_model), checked
    quantize       int8 post-training static quantization (needs the deploy extra)
    graph_check    a user's ONNX graph checked when opened: its inputs, finite weights
"""
from __future__ import annotations

from ..utils.lazy import lazy_exports

_EXPORTS = {  # public name -> module (imported on first use: optional packages stay optional)
    "ExportInfo": "export",
    "export_onnx": "export",
    "model_digest": "export",
    "read_export_info": "export",
    "ENGINES": "engines",
    "FeatureEngine": "engines",
    "load_engine": "engines",
    "EngineError": "engine_choice",
    "ModelEngine": "engine_choice",
    "engine_for_model": "engine_choice",
    "quantize_int8": "quantize",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
