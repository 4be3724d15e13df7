"""Signal: Selective Interaction and Global-local Alignment for multi-modal object ReID.

Public API:
    SignalConfig.preset(name, **overrides)   typed configuration (signal_core.config)
    build_model(cfg) -> SignalModel           random init, or CLIP weights with cfg.pretrained
    load_official_checkpoint(path, cfg)       the authors' Signal_model.pth -> SignalModel
    save_checkpoint / load_checkpoint         our safetensors checkpoints, config and checksum included
    load_weights(path, official_cfg)          either kind of file (CheckpointError naming a bad one)

Packages and modules, one question each:
    config      SignalConfig: the typed, validated configuration and its presets
    modalities  the modality names, labels, letters, folders, missing-modality settings
    checkpoint  weights in and out: our safetensors files and the authors' .pth
    model       the network: SignalModel, backbone, CLIP weights, SIM, GAM, LAM, heads, losses, precision
    data        dataset parsers (RGBNT201, RGBNT100, MSVR310), triples folders, transforms, sampler
    metrics     mAP / mINP / CMC, distances, re-ranking, the score split by feature part
    retrieval   features of a split and of a folder, feature folders, the gallery index
    deploy      ONNX export, feature engines (torch, onnxruntime, OpenVINO), int8
    viz         drawings shared by the demo and the report (needs the viz extra)
    utils       atomic writes, file hashing, the allocator setting
"""
from .checkpoint import (
                         CheckpointError,
                         load_checkpoint,
                         load_official_checkpoint,
                         load_weights,
                         read_checkpoint_config,
                         read_checkpoint_metadata,
                         save_checkpoint,
)
from .config import SignalConfig
from .model.signal_model import Explanation, ModalityExplanation, SignalModel, SignalOutput, build_model

__version__ = "0.3.0"

__all__ = [
    "CheckpointError", "Explanation", "ModalityExplanation", "SignalConfig", "SignalModel", "SignalOutput",
    "build_model", "load_checkpoint", "load_official_checkpoint", "load_weights", "read_checkpoint_config",
    "read_checkpoint_metadata", "save_checkpoint",
]
