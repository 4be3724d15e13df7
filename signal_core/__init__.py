"""Signal: Selective Interaction and Global-local Alignment for multi-modal object ReID.

Public API:
    SignalConfig.preset(name, **overrides)   typed configuration (signal_core.config)
    build_model(cfg) -> SignalModel           random init, or CLIP weights with cfg.pretrained
    load_official_checkpoint(path, cfg)       the authors' Signal_model.pth -> SignalModel
    save_checkpoint / load_checkpoint         our safetensors checkpoints, config and checksum included
    load_weights(path, official_cfg)          either kind of file (CheckpointError naming a bad one)
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

__all__ = [
    "CheckpointError", "Explanation", "ModalityExplanation", "SignalConfig", "SignalModel", "SignalOutput",
    "build_model", "load_checkpoint", "load_official_checkpoint", "load_weights", "read_checkpoint_config",
    "read_checkpoint_metadata", "save_checkpoint",
]
