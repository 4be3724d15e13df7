"""Signal: Selective Interaction and Global-local Alignment for multi-modal object ReID.

Public API:
    SignalConfig.preset(name, **overrides)   typed configuration (signal_core.config)
    build_model(cfg) -> SignalModel           random init, or CLIP weights with cfg.pretrained
    load_official_checkpoint(path, cfg)       the authors' Signal_model.pth -> SignalModel
    save_checkpoint / load_checkpoint         our safetensors checkpoints, config and checksum included
    load_weights(weights, official_cfg)       either kind of file, a Hub-style folder, hf-hub:owner/repo or
                                              hf://owner/repo/file (CheckpointError naming a bad one);
                                              registration=... sets the model's registration at load time
    with_registration(model, registration)    the same weights with another image-level registration
    save_pretrained(model, folder, facts)     a Hub-style folder: model.safetensors, config.json, model card
    resolve_weights(spec)                     the local file any --weights names (Hub names via the HF cache)

Packages and modules, one question each:
    config      SignalConfig: the typed, validated configuration and its presets
    modalities  the modality names, labels, letters, folders, missing-modality settings
    checkpoint  weights in and out: our safetensors files and the authors' .pth
    weights_source  the one resolver of --weights: files, Hub-style folders, hf-hub: and hf:// names
    hub_folder  save a Hub-style folder (PyTorchModelHubMixin's layout): weights, config.json, card
    model_card  the folder's README.md: Hub front matter, data, metrics and protocol, paper, sha256
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
                         with_registration,
)
from .config import SignalConfig
from .hub_folder import save_pretrained
from .model.signal_model import Explanation, ModalityExplanation, SignalModel, SignalOutput, build_model
from .model_card import CardFacts
from .weights_source import WeightsSourceError, resolve_weights

__version__ = "0.3.0"

__all__ = [
    "CardFacts", "CheckpointError", "Explanation", "ModalityExplanation", "SignalConfig", "SignalModel", "SignalOutput",
    "build_model", "load_checkpoint", "load_official_checkpoint", "load_weights", "read_checkpoint_config",
    "read_checkpoint_metadata", "resolve_weights", "save_checkpoint", "save_pretrained", "WeightsSourceError",
    "with_registration",
]
