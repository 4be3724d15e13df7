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
from typing import Any

import yaml

from signal_core import SignalConfig
from signal_core.data import DATASETS

from .typed_values import convert_value, field_types


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
    lam_lr_factor: float = 1.0  # LAM's parameters (biases too) get this x base_lr (authors: 1, as base)
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
    # after the transforms, move NIR's and TIR's content each by a random integer displacement of at most this
    # many px per axis, reflection border (a simulated misaligned rig; 0 = off, the authors'; docs/alignment.md)
    rig_shift_augment: int = 0
    num_workers: int = 4  # data loader workers per process
    # auto (the authors': fp16 autocast + GradScaler on CUDA, fp32 elsewhere) | fp32 | fp16 | bf16
    precision: str = "auto"
    seed: int = 1234  # global seed; epoch e of rank r draws from (seed, e, r), so a resumed run repeats exactly
    checkpoint_every: int = 10  # epochs between checkpoints (one is always written at the end)
    eval_batch_size: int = 128  # triples per batch at test time
    eval_every: int = 0  # test every N epochs and log the metrics to history.jsonl (0: only after the last)
    # hold out this many training identities (a draw seeded by `seed`, recorded in val_split.json) as a validation
    # split, evaluated with the test split every eval_every epochs; training uses the others (0 = off, the authors')
    val_ids: int = 0
    tensorboard: bool = False  # also log losses, learning rates and test metrics for TensorBoard
    output_dir: str = "runs/signal"  # checkpoints, history.jsonl and metrics.json go here


PRECISIONS = ("auto", "fp32", "fp16", "bf16")
SCHEDULES = ("cosine", "multistep")
# (field, lowest allowed value, inclusive): checked by TrainConfig.validate
_LOWER_BOUNDS = [("epochs", 1, True), ("batch_size", 1, True), ("num_instances", 1, True),
                 ("base_lr", 0.0, False), ("backbone_lr", 0.0, True), ("bias_lr_factor", 0.0, True),
                 ("classifier_lr_factor", 0.0, True), ("lam_lr_factor", 0.0, True),
                 ("weight_decay", 0.0, True), ("warmup_epochs", 0, True),
                 ("warmup_lr_factor", 0.0, True), ("min_lr_factor", 0.0, True), ("lr_noise_pct", 0.0, True),
                 ("gamma", 0.0, False), ("num_workers", 0, True), ("checkpoint_every", 1, True),
                 ("eval_batch_size", 1, True), ("eval_every", 0, True), ("rig_shift_augment", 0, True),
                 ("val_ids", 0, True)]
def validate_train_config(cfg: TrainConfig) -> None:
    """Raise ``ValueError`` naming the first setting that cannot work and what it must be."""
    for name, low, inclusive in _LOWER_BOUNDS:
        value = getattr(cfg, name)
        if value < low or (not inclusive and value == low):
            bound = f"at least {low}" if inclusive else f"greater than {low}"
            raise ValueError(f"train.{name} must be {bound}, got {value}.")
    choices = {"dataset": DATASETS, "precision": PRECISIONS, "schedule": SCHEDULES}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"train.{name} must be one of {', '.join(allowed)}; got {getattr(cfg, name)!r}.")
    if cfg.batch_size % cfg.num_instances:
        raise ValueError(f"train.batch_size {cfg.batch_size} must be a multiple of train.num_instances "
                         f"{cfg.num_instances} (P identities x K instances).")
    if any(m < 1 for m in cfg.milestones):
        raise ValueError(f"train.milestones must be epochs >= 1, got {cfg.milestones}.")
    if cfg.val_ids and not cfg.eval_every:
        raise ValueError(f"train.val_ids={cfg.val_ids} holds out a validation split that is evaluated every "
                         "train.eval_every epochs: set train.eval_every (e.g. 1), or train.val_ids=0.")
    if not cfg.output_dir.strip():
        raise ValueError("train.output_dir must not be empty.")


def check_identities_per_rank(cfg: TrainConfig, world_size: int) -> None:
    """Each process mines triplets in its own share of the batch: it needs at least 2 identities.

    Raises:
        ValueError: ``batch_size / (world_size x num_instances)`` is below 2, or not whole.
    """
    step = world_size * cfg.num_instances
    per_rank = cfg.batch_size // step
    if cfg.batch_size % step or per_rank < 2:
        raise ValueError(
            f"train.batch_size {cfg.batch_size} over {world_size} process(es) x num_instances {cfg.num_instances} "
            f"gives {cfg.batch_size / step:g} identities per process; triplet mining needs a whole number >= 2 "
            f"per process: use batch_size {2 * step} or more (a multiple of {step}), fewer processes or a "
            "smaller num_instances.")


def _apply(section: dict, cls: type, prefix: str, name: str, raw: Any) -> None:
    types_ = field_types(cls)
    if name not in types_:
        where = "train/config.py" if cls is TrainConfig else "signal_core/config.py"
        raise ValueError(f"unknown {prefix} setting {name!r}; the settings are listed in {where}.")
    section[name] = convert_value(raw, types_[name], f"{prefix}.{name}")


def _typed_section(raw: dict, cls: type, prefix: str, path: Path, skip: tuple[str, ...] = ()) -> dict:
    section: dict = {}
    for name, value in raw.items():
        if name in skip:
            section[name] = value
            continue
        try:
            _apply(section, cls, prefix, str(name), value)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return section


def load_config(path: str | Path, overrides: list[str] | None = None) -> tuple[SignalConfig, TrainConfig]:
    """Read a YAML config and apply ``section.key=value`` overrides, each converted to its field's type.

    Raises:
        ValueError: unknown section or key, a value of the wrong type or range, a malformed
            override (the one-line message says which and what is expected).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected 'model:' and 'train:' sections, got {type(raw).__name__}.")
    model_raw, train_raw = dict(raw.pop("model", {}) or {}), dict(raw.pop("train", {}) or {})
    if raw:
        raise ValueError(f"{path}: unknown top-level sections {sorted(raw)}; expected 'model' and 'train'.")
    model_values = _typed_section(model_raw, SignalConfig, "model", path, skip=("preset",))
    train_values = _typed_section(train_raw, TrainConfig, "train", path)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in ("model", "train"):
            raise ValueError(f"override {item!r} must look like train.epochs=2 or model.k1=64.")
        if section == "model" and name == "preset":
            model_values["preset"] = value
        else:
            target = model_values if section == "model" else train_values
            _apply(target, SignalConfig if section == "model" else TrainConfig, section, name, value)
    preset = model_values.pop("preset", None)
    complete = set(field_types(SignalConfig)) <= set(model_values)  # e.g. a run's config.yaml
    if preset is None and not complete:
        raise ValueError(f"{path}: the model section needs a 'preset' (rgbnt201, rgbnt100, msvr310, tiny).")
    try:  # SignalConfig checks every model field (signal_core/config.py)
        model_cfg = SignalConfig(**model_values) if preset is None else SignalConfig.preset(str(preset), **model_values)
    except ValueError as exc:
        raise ValueError(f"model.{exc}" if str(exc)[:1].islower() else str(exc)) from None
    train_cfg = TrainConfig(**train_values)
    validate_train_config(train_cfg)
    return model_cfg, train_cfg


def resolved_config(model_cfg: SignalConfig, cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """The full configuration of a run as plain YAML / JSON values: {"model": ..., "train": ...}."""
    return {"model": model_cfg.to_dict(), "train": dataclasses.asdict(cfg)}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"key: saved -> current"`` for every key whose value differs (keys missing on one side too)."""
    out = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key, _ABSENT), current.get(key, _ABSENT)
        if old != new:
            out.append(f"{key}: {_show(old)} -> {_show(new)}")
    return out


_ABSENT = object()


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else repr(value)
