"""Training configuration: a YAML file with a ``model:`` and a ``train:`` section, plus
``key=value`` overrides from the command line (``train.epochs=2``, ``model.k1=64``).

The ``model`` section is a :class:`signal_core.SignalConfig` preset name plus field overrides; the
``train`` section is :class:`TrainConfig`. The configs stop here: the rest of the code receives
plain objects.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from signal_core import SignalConfig


@dataclass
class TrainConfig:
    """Optimisation, schedule, data and bookkeeping (the authors' values in the YAML presets)."""

    dataset: str = "rgbnt201"  # rgbnt201 | rgbnt100 | msvr310 (the on-disk layout)
    epochs: int = 50  # training epochs
    batch_size: int = 64  # triples per batch = P identities x K instances
    num_instances: int = 8  # K: instances per identity in a batch
    base_lr: float = 3.5e-4  # Adam learning rate of the Signal modules and heads
    backbone_lr: float = 5e-6  # fixed learning rate of the CLIP backbone (biases included)
    bias_lr_factor: float = 2.0  # parameters named '*bias*' outside the backbone get this x base_lr
    classifier_lr_factor: float = 1.0  # classifiers get this x base_lr (MSVR310: 100)
    weight_decay: float = 1e-4  # Adam's coupled L2 weight decay
    schedule: str = "cosine"  # "cosine" (timm-style, with warmup and noise) | "multistep"
    warmup_epochs: int = 10  # linear warmup from warmup_lr_factor * base_lr
    warmup_lr_factor: float = 0.1  # cosine: warmup starts at this x base_lr (for every group)
    min_lr_factor: float = 0.001  # cosine: final learning rate = this x base_lr
    lr_noise_pct: float = 0.67  # cosine: per-epoch multiplicative noise bound (0 disables)
    lr_noise_seed: int = 42  # cosine: noise generator seed (+ epoch)
    milestones: list[int] = field(default_factory=lambda: [20, 40])  # multistep epochs
    gamma: float = 0.1  # multistep decay
    paired_transforms: bool = False  # one random augmentation draw for all three modalities
    num_workers: int = 4  # data loader workers per process
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 (autocast on CUDA; fp32 on CPU for auto)
    seed: int = 1234  # global seed; epoch e uses seed + e, so a resumed run repeats exactly
    checkpoint_every: int = 10  # epochs between checkpoints (one is always written at the end)
    eval_batch_size: int = 128  # triples per batch at test time
    output_dir: str = "runs/signal"  # checkpoints, history.jsonl and metrics.json go here


def _coerce(value: str) -> Any:
    return yaml.safe_load(value)


def load_config(path: str | Path, overrides: Optional[list[str]] = None) -> tuple[SignalConfig, TrainConfig]:
    """Read a YAML config and apply ``section.key=value`` overrides.

    Raises:
        ValueError: unknown section or key, malformed override (the message says which).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    model_raw, train_raw = dict(raw.pop("model", {}) or {}), dict(raw.pop("train", {}) or {})
    if raw:
        raise ValueError(f"{path}: unknown top-level sections {sorted(raw)}; expected 'model' and 'train'.")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in ("model", "train"):
            raise ValueError(f"override {item!r} must look like train.epochs=2 or model.k1=64.")
        (model_raw if section == "model" else train_raw)[name] = _coerce(value)
    preset = model_raw.pop("preset", None)
    if preset is None:
        raise ValueError(f"{path}: the model section needs a 'preset' (rgbnt201, rgbnt100, msvr310, tiny).")
    if "image_size" in model_raw:
        model_raw["image_size"] = tuple(model_raw["image_size"])
    model_cfg = SignalConfig.preset(preset, **model_raw)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(train_raw) - known)
    if unknown:
        raise ValueError(f"unknown train setting(s) {unknown}; see train/config.py for the list.")
    return model_cfg, TrainConfig(**train_raw)
