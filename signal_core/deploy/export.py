"""The test-time feature of :meth:`SignalModel.extract_features` as one traceable module, and its
export to ONNX.

:class:`FeatureGraph` computes exactly what ``extract_features`` computes in fp32 (same modules,
same weights; the camera id ``-1`` is an unknown camera per row, the mean camera embedding, as there),
with one difference that only matters to a graph exporter: it does no Python-side checks that depend
on values.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..modalities import MODALITIES
from ..model.backbone import camera_embedding
from ..model.signal_model import SignalModel

INPUT_NAMES = (*MODALITIES, "cam_ids")
OUTPUT_NAME = "features"
OPSET = 17
META_KEY = "signal_export"  # ONNX metadata_props key holding :class:`ExportInfo` as JSON


@dataclass
class ExportInfo:
    """What an engine needs to know about an exported graph (stored in its metadata)."""

    image_size: tuple[int, int]  # (H, W) of every input image
    feature_dim: int  # D of the [B, D] output
    num_cameras: int  # camera ids must be in [0, num_cameras - 1], or -1 (unknown)
    precision: str  # "fp32" or "int8"
    config: str  # the model's SignalConfig as JSON
    weights_digest: str = ""  # model_digest() of the exported weights ("" in files from before it existed)

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "image_size": list(self.image_size)})

    @classmethod
    def from_json(cls, text: str) -> ExportInfo:
        data = json.loads(text)
        return cls(**{**data, "image_size": tuple(data["image_size"])})


class FeatureGraph(nn.Module):
    """``extract_features`` of a :class:`SignalModel` as a plain forward (fp32, eval mode).

    Inputs rgb / nir / tir [B, 3, H, W] float32 (normalised as in training), cam_ids [B] int64
    with -1 for an unknown camera; output [B, F] features, F = 3D (+ 3D with SIM).
    """

    def __init__(self, model: SignalModel):
        super().__init__()
        if model.cfg.registration != "none":  # its FFT search is not in the graph: features would differ
            raise ValueError(f"model.registration '{model.cfg.registration}' is not part of the exported graph: "
                             "export the model with registration 'none' (python -m train.export --registration "
                             "none) and warp NIR / TIR in front of the engine with "
                             "signal_core.model.registration.Registration (docs/deploy.md).")
        self.model = model.eval()

    def _class_tokens(self, n: int, cams: torch.Tensor) -> torch.Tensor:
        """[N] camera ids (-1: unknown) -> [N, 1, width] class tokens with the camera embedding."""
        bb = self.model.backbone
        cls = bb.visual.class_embedding.expand(n, -1)  # [N, width]
        if bb.camera_embed is not None:
            cls = cls + bb.camera_embed_scale * camera_embedding(bb.camera_embed, cams)
        return cls.unsqueeze(1)

    def encode(self, images: torch.Tensor, cams: torch.Tensor) -> torch.Tensor:
        """As :meth:`CLIPVisionBackbone.forward`: [N, 3, H, W], [N] -> [N, 1 + L, D] tokens."""
        v = self.model.backbone.visual
        x = v.conv1(images).flatten(2).transpose(1, 2)  # [N, L, width]
        x = torch.cat([self._class_tokens(x.shape[0], cams), x], dim=1) + v.positional_embedding
        x = v.ln_post(v.transformer(v.ln_pre(x)))
        return x @ v.proj  # [N, 1 + L, D]

    def forward(self, rgb: torch.Tensor, nir: torch.Tensor, tir: torch.Tensor,
                cam_ids: torch.Tensor) -> torch.Tensor:
        tokens = self.encode(torch.cat([rgb, nir, tir], dim=0), cam_ids.long().reshape(-1).repeat(3))
        tokens = tokens.unflatten(0, (3, -1)).transpose(0, 1)  # [B, 3, 1 + L, D]
        cls, patches = tokens[:, :, 0], tokens[:, :, 1:]
        parts = [cls.flatten(1)]
        if self.model.sim is not None:
            selected = (patches * self.selection_weight(cls, patches)).flatten(1, 2)  # [B, 3L, D]
            parts.append(_interaction(self.model.sim.interaction, cls, selected).flatten(1))  # f_rnt [B, 3D]
        return torch.cat(parts, dim=1)  # [B, F]

    def selection_weight(self, cls: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """SIM's final token mask as numbers, [B, 3, L, 1], as :class:`TokenSelection` builds it
        (scores and top-k in fp32), with out-of-place ops a graph exporter takes."""
        sel = self.model.sim.selection
        l = patches.shape[2]
        intra = _topk_mask(sel.intra_scores(cls, patches), sel.k1)  # [B, 3, L]
        chosen = _topk_mask(_inter_scores(sel, cls, patches).flatten(2), sel.k2).unflatten(-1, (2, l))  # [B, 3, 2, L]
        # query q chose among the other two modalities (ascending order): target t's tokens chosen
        # by q sit in slot 0 if t is q's first "other" modality, else slot 1.
        inter = torch.stack([torch.maximum(chosen[:, 1, 0], chosen[:, 2, 0]),
                             torch.maximum(chosen[:, 0, 0], chosen[:, 2, 1]),
                             torch.maximum(chosen[:, 0, 1], chosen[:, 1, 1])], dim=1)  # [B, 3, L]
        final = torch.maximum(intra, inter) if sel.selection == "union" else intra * inter
        return final.unsqueeze(-1)


def _inter_scores(sel, cls: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """:meth:`TokenSelection.inter_scores` without batch-size constants: [B, 3, 2, L]."""
    scores = sel.q_proj(cls) @ sel.k_proj(patches.flatten(1, 2)).transpose(1, 2)  # [B, 3, 3L]
    scores = (scores / math.sqrt(sel.dim)).softmax(dim=-1).unflatten(-1, (3, patches.shape[2]))
    return torch.stack([scores[:, 0, 1:], scores[:, 1, ::2], scores[:, 2, :2]], dim=1)  # others, ascending


def _interaction(mi, cls: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """:class:`ModalInteraction` with its multi-head attention written out (nn.MultiheadAttention
    bakes the batch size into the exported graph): [B, 3, D], [B, N, D] -> [B, 3, D]."""
    attn = mi.attn
    heads = attn.num_heads
    wq, wk, wv = attn.in_proj_weight.chunk(3)
    bq, bk, bv = attn.in_proj_bias.chunk(3)
    split = lambda x: x.unflatten(-1, (heads, -1)).transpose(1, 2)
    q, k, v = split(cls @ wq.T + bq), split(tokens @ wk.T + bk), split(tokens @ wv.T + bv)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(attn.head_dim)).softmax(dim=-1)  # [B, heads, 3, N]
    out = attn.out_proj((weights @ v).transpose(1, 2).flatten(2))  # [B, 3, D]
    x = mi.norm1(cls + out)
    return mi.norm2(x + mi.ffn(x))


def _topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """1.0 at the top-``k`` entries along the last dim of ``scores``, else 0.0 (same dtype)."""
    idx = scores.topk(min(k, scores.shape[-1]), dim=-1).indices
    return nn.functional.one_hot(idx, scores.shape[-1]).amax(dim=-2).to(scores.dtype)  # [..., L]


def export_info(model: SignalModel, precision: str = "fp32", digest: str = "") -> ExportInfo:
    cfg = model.cfg
    dim = cfg.embed_dim * (6 if model.sim is not None else 3)
    return ExportInfo(image_size=tuple(cfg.image_size), feature_dim=dim,
                      num_cameras=model.num_cameras, precision=precision,
                      config=cfg.replace(pretrained=None).to_json(), weights_digest=digest)


def model_digest(model: SignalModel) -> str:
    """sha256 of the model's config and fp32 parameters: the same for our checkpoint and the authors'
    ``.pth`` of the same weights, so an exported graph can be matched to the weights it came from."""
    digest = hashlib.sha256(model.cfg.replace(pretrained=None).to_json().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.detach().float().cpu().numpy()).tobytes())
    return digest.hexdigest()


def export_onnx(model: SignalModel, path: str | os.PathLike, batch: int = 2) -> ExportInfo:
    """Write ``model``'s test-time feature as an ONNX graph (dynamic batch, weights inside the file).

    Returns:
        The :class:`ExportInfo` also stored in the graph's metadata.
    """
    import onnx

    was_training = model.training
    on_cpu_fp32 = all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())
    graph = FeatureGraph(model if on_cpu_fp32 else copy.deepcopy(model).float().cpu())  # caller's model stays put
    h, w = model.cfg.image_size
    g = torch.Generator().manual_seed(0)
    args = tuple(torch.randn(batch, 3, h, w, generator=g) for _ in range(3)) + (
        torch.full((batch,), -1, dtype=torch.long),)
    dynamic = {name: {0: "batch"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused MHA kernel has no ONNX form; same maths
    try:
        with tempfile.TemporaryDirectory(prefix="signal-export-") as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes fixed by the config (L, k)
            raw = str(Path(tmp) / "raw.onnx")
            torch.onnx.export(graph, args, raw, input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                              dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
            proto = onnx.load(raw)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(was_training)
    info = export_info(model, digest=model_digest(model))
    set_export_info(proto, info)
    save_onnx(proto, path)
    return info


def set_export_info(proto, info: ExportInfo) -> None:
    """Store ``info`` in the ONNX model's metadata_props (replacing an earlier one)."""
    for prop in [p for p in proto.metadata_props if p.key == META_KEY]:
        proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, info.to_json()


def read_export_info(proto) -> ExportInfo:
    """The :class:`ExportInfo` of an ONNX model written by :func:`export_onnx`."""
    for prop in proto.metadata_props:
        if prop.key == META_KEY:
            return ExportInfo.from_json(prop.value)
    raise ValueError("this ONNX file was not written by python -m train.export (no Signal metadata): "
                     "export it with python -m train.export.")


def save_onnx(proto, path: str | os.PathLike) -> None:
    """Check and write an ONNX model atomically, weights inside the file (external data above 2 GB)."""
    import onnx

    from ..utils.atomic import atomic_write

    onnx.checker.check_model(proto)
    large = proto.ByteSize() > 2_000_000_000 if hasattr(proto, "ByteSize") else False
    atomic_write(path, lambda tmp: onnx.save_model(proto, tmp, save_as_external_data=large))
