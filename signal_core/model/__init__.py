"""The network: the Signal model and its parts, one per module.

    signal_model   SignalModel (named outputs: SignalOutput, Explanation), build_model
    backbone       the shared CLIP ViT visual encoder (open_clip modules)
    clip_weights   pretrained CLIP visual weights into the backbone, at any input size
    sim            SIM: intra- / inter-modal token selection and modal interaction
    gam            GAM: Gram-volume global alignment
    lam            LAM: deformable local alignment
    registration   image-level registration: NIR / TIR displacement to RGB, estimated and undone (option)
    heads          BNNeck identity heads
    losses         label-smoothed cross-entropy, batch-hard triplet
    precision      inference precision (a bf16 encoder copy, thread-safe)
    complexity     parameters and forward FLOPs per module, measured from the model
"""
from __future__ import annotations

from ..utils.lazy import lazy_exports

_EXPORTS = {  # public name -> module (imported on first use: optional packages stay optional)
    "SignalModel": "signal_model",
    "SignalOutput": "signal_model",
    "Explanation": "signal_model",
    "ModalityExplanation": "signal_model",
    "build_model": "signal_model",
    "CLIPVisionBackbone": "backbone",
    "load_clip_weights": "clip_weights",
    "SelectiveInteraction": "sim",
    "GlobalAlignment": "gam",
    "gram_volume": "gam",
    "LocalAlignment": "lam",
    "LAMOutput": "lam",
    "BNNeckHead": "heads",
    "build_heads": "heads",
    "batch_hard_triplet": "losses",
    "label_smoothed_ce": "losses",
    "PRECISIONS": "precision",
    "resolve_precision": "precision",
    "bf16_is_fast": "precision",
    "complexity": "complexity",
    "config_complexity": "complexity",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
