"""int8 post-training static quantization of an exported feature graph (onnxruntime.quantization).

What is quantized: the weight matmuls of the ViT encoder (patch-embedding Conv, attention in / out
projections, MLP) with per-channel symmetric int8 weights and per-tensor uint8 activations,
calibrated (MinMax) on real triples; QDQ format, so onnxruntime and OpenVINO both run it in int8.
What stays float: everything else, in particular SIM's scores, softmaxes and top-k (a changed
top-k changes which tokens are fused), the modal interaction, the final projection and the
LayerNorms.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .engines import require
from .export import read_export_info, save_onnx, set_export_info

QUANTIZED_SCOPE = "/transformer/"  # node-name prefix of the encoder's blocks in the exported graph


def quantizable_nodes(proto) -> list[str]:
    """Names of the nodes to quantize: Conv, and MatMul / Gemm with a weight (initializer) input,
    inside the encoder (the patch embedding and the transformer blocks)."""
    weights = {init.name for init in proto.graph.initializer}
    names = []
    for node in proto.graph.node:
        has_weight = any(name in weights for name in node.input)
        if node.op_type == "Conv" or (node.op_type in ("MatMul", "Gemm") and has_weight
                                      and node.name.startswith(QUANTIZED_SCOPE)):
            names.append(node.name)
    return names


class _Reader:
    """onnxruntime CalibrationDataReader over batches of {rgb, nir, tir, cam_ids} arrays."""

    def __init__(self, batches: Iterable[dict[str, np.ndarray]]):
        self._it: Iterator[dict[str, np.ndarray]] = iter(batches)

    def get_next(self):
        batch = next(self._it, None)
        if batch is None:
            return None
        return {"rgb": np.asarray(batch["rgb"], np.float32), "nir": np.asarray(batch["nir"], np.float32),
                "tir": np.asarray(batch["tir"], np.float32), "cam_ids": np.asarray(batch["cam_ids"], np.int64)}


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                  calibration: Iterable[dict[str, np.ndarray]]) -> list[str]:
    """Write the int8 version of an exported fp32 graph.

    Args:
        fp32_path: a graph written by :func:`signal_core.deploy.export.export_onnx`.
        out_path: the int8 graph (QDQ), with the same inputs, output and metadata (precision "int8").
        calibration: batches {rgb, nir, tir: [B, 3, H, W] float32, cam_ids: [B] int64}, e.g. a few
            hundred triples of the target data.

    Returns:
        The names of the quantized nodes.
    """
    onnx = require("onnx")
    require("onnxruntime")
    from onnxruntime import quantization as quant
    proto = onnx.load(str(fp32_path))
    info = read_export_info(proto)
    nodes = quantizable_nodes(proto)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's advice to run its pre-processing: the graph is already clean
    try:
        with tempfile.TemporaryDirectory(prefix="signal-int8-") as tmp:
            raw = str(Path(tmp) / "int8.onnx")
            quant.quantize_static(str(fp32_path), raw, _Reader(calibration), quant_format=quant.QuantFormat.QDQ,
                                  per_channel=True, activation_type=quant.QuantType.QUInt8,
                                  weight_type=quant.QuantType.QInt8, nodes_to_quantize=nodes,
                                  calibrate_method=quant.CalibrationMethod.MinMax)
            proto = onnx.load(raw)
    finally:
        root.setLevel(level)
    info.precision = "int8"
    set_export_info(proto, info)
    save_onnx(proto, out_path)
    return nodes
