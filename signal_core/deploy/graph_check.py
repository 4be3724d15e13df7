"""What a user-supplied ONNX graph must be before an engine runs it, checked once when it is opened:

- its inputs are the exported ones: ``rgb``, ``nir``, ``tir`` [batch, 3, H, W] at the model's image size,
  ``cam_ids`` [batch], with a free batch (a graph exported with a fixed batch or another size would fail
  in the middle of a run, at the first batch it cannot take);
- its weights (initializers and constant tensors, subgraphs included) are finite, checked as a checkpoint's
  are (:func:`signal_core.checkpoint.check_finite`): onnxruntime and OpenVINO both run a graph of NaN and
  return NaN features.

Both raise ``ValueError`` with one line that says what the graph takes and what to do.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import check_finite
from .export import INPUT_NAMES, OUTPUT_NAME

EXPORT_AGAIN = "export it from these weights with python -m train.export"


def _dims(value_info) -> list[int | str]:
    """The declared shape of a graph input: ints where fixed, the dimension's name (or "?") where free."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


def _shown(dims: list[int | str]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def check_graph_inputs(proto, path: Path, image_size: tuple[int, int]) -> None:
    """Raise ``ValueError`` unless the graph takes what :func:`export_onnx` gives it (see the module docstring)."""
    h, w = image_size
    inputs = {i.name: _dims(i) for i in proto.graph.input}
    outputs = [o.name for o in proto.graph.output]
    if set(inputs) != set(INPUT_NAMES) or OUTPUT_NAME not in outputs:
        raise ValueError(f"{path} takes inputs {sorted(inputs)} and gives {outputs}, not rgb, nir, tir, cam_ids -> "
                         f"features; {EXPORT_AGAIN}.")
    for name, dims in inputs.items():
        want = ["batch"] if name == "cam_ids" else ["batch", 3, h, w]
        fixed_batch = bool(dims) and isinstance(dims[0], int)
        fits = len(dims) == len(want) and all(not isinstance(d, int) or d == e for d, e in zip(dims[1:], want[1:]))
        if fixed_batch or not fits:
            what = f"a fixed batch of {dims[0]}" if fixed_batch and fits else "another shape"
            raise ValueError(f"{path} takes {name} of shape {_shown(dims)} ({what}); these weights need "
                             f"{_shown(want)} with a free batch: {EXPORT_AGAIN}.")


_FLOATS = {1: np.float32, 10: np.float16, 11: np.float64}  # TensorProto.FLOAT, FLOAT16, DOUBLE


class _GraphWeights(Mapping):
    """The floating tensors of a graph by name, each converted to torch when read (one at a time)."""

    def __init__(self, proto, base_dir: Path) -> None:
        self._tensors = {name: t for name, t in _tensors(proto.graph, "") if t.data_type in _FLOATS}
        self._base_dir, self._last = str(base_dir), (None, None)

    def __getitem__(self, name: str) -> torch.Tensor:
        if self._last[0] != name:
            from onnx import TensorProto, numpy_helper

            tensor = self._tensors[name]
            if tensor.data_location == TensorProto.EXTERNAL:  # read into a copy, not into the graph
                tensor = TensorProto()
                tensor.CopyFrom(self._tensors[name])
            self._last = (name, torch.from_numpy(np.array(numpy_helper.to_array(tensor, self._base_dir))))
        return self._last[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


def _tensors(graph, prefix: str) -> Iterator[tuple[str, object]]:
    """(name, TensorProto) of a graph's initializers and of its nodes' tensor attributes, subgraphs included."""
    for tensor in graph.initializer:
        yield prefix + tensor.name, tensor
    for i, node in enumerate(graph.node):
        where = f"{prefix}{node.name or f'{node.op_type}#{i}'}."
        for attr in node.attribute:
            if attr.HasField("t"):
                yield where + attr.name, attr.t
            for k, tensor in enumerate(attr.tensors):
                yield f"{where}{attr.name}[{k}]", tensor
            if attr.HasField("g"):
                yield from _tensors(attr.g, f"{where}{attr.name}/")
            for k, sub in enumerate(attr.graphs):
                yield from _tensors(sub, f"{where}{attr.name}[{k}]/")


def check_graph_weights(proto, path: Path) -> None:
    """Raise ``ValueError`` (a ``CheckpointError``) naming the first tensor of the graph holding NaN or infinity."""
    check_finite(_GraphWeights(proto, path.parent), str(path), remedy=f"the graph is damaged; {EXPORT_AGAIN}")
