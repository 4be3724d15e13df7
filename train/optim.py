"""Optimiser parameter groups and the per-epoch learning-rate schedules of the authors' code.

Groups (Adam, coupled weight decay): the CLIP backbone at a fixed ``backbone_lr`` (its biases
too), other ``*bias*`` parameters at ``bias_lr_factor x base_lr``, classifiers at
``classifier_lr_factor x base_lr``, LAM at ``lam_lr_factor x base_lr`` (its own group only when the
factor is not 1; the fix of docs/alignment.md), everything else (camera embedding, SIM, GAM tau, LAM, BN) at
``base_lr``. Frozen parameters are left out.

Schedules are set once per epoch, with epochs counted from 1 as in the authors' loop:
- "cosine" (timm's CosineLRScheduler as they configure it): linear warmup from
  ``warmup_lr_factor * base_lr`` (the same absolute start for every group), then cosine from each
  group's lr to ``min_lr_factor * base_lr``, times a per-epoch noise factor 1 + n, |n| < pct,
  n ~ N(0, 1) redrawn until inside the bound, from a generator seeded ``lr_noise_seed + epoch``.
- "multistep": each group's lr x gamma ** (number of milestones <= epoch).
"""
from __future__ import annotations

import bisect
import math

import torch
from torch import nn

from .config import TrainConfig


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Adam parameter groups, one per distinct learning rate, each named after the roles it holds
    (``backbone``, ``classifier``, ``bias``, ``base``; e.g. ``backbone+base`` when two share an lr)."""
    groups: dict[float, list[nn.Parameter]] = {}
    roles: dict[float, list[str]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("backbone.visual."):
            role, lr = "backbone", cfg.backbone_lr
        elif name.startswith("lam.") and cfg.lam_lr_factor != 1.0:  # its own group only when asked
            role, lr = "lam", cfg.base_lr * cfg.lam_lr_factor
        elif "classifier" in name:
            role, lr = "classifier", cfg.base_lr * cfg.classifier_lr_factor
        elif "bias" in name:
            role, lr = "bias", cfg.base_lr * cfg.bias_lr_factor
        else:
            role, lr = "base", cfg.base_lr
        groups.setdefault(lr, []).append(param)
        if role not in roles.setdefault(lr, []):
            roles[lr].append(role)
    return [{"params": params, "lr": lr, "initial_lr": lr, "weight_decay": cfg.weight_decay,
             "name": "+".join(roles[lr])} for lr, params in groups.items()]


def group_names(optimizer: torch.optim.Optimizer) -> list[str]:
    """Each group's name (``group<i>`` for an optimizer restored from a checkpoint made before groups had names)."""
    return [g.get("name", f"group{i}") for i, g in enumerate(optimizer.param_groups)]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Adam:
    return torch.optim.Adam(parameter_groups(model, cfg), lr=cfg.base_lr, weight_decay=cfg.weight_decay)


def _lr_noise(cfg: TrainConfig, epoch: int) -> float:
    if cfg.lr_noise_pct <= 0 or not 0 <= epoch < cfg.epochs:
        return 0.0
    g = torch.Generator().manual_seed(cfg.lr_noise_seed + epoch)
    while True:
        noise = torch.randn(1, generator=g).item()
        if abs(noise) < cfg.lr_noise_pct:
            return noise


def epoch_learning_rates(initial_lrs: list[float], epoch: int, cfg: TrainConfig) -> list[float]:
    """Learning rate of each group for ``epoch`` (1-based)."""
    if cfg.schedule == "multistep":
        decay = cfg.gamma ** bisect.bisect_right(sorted(cfg.milestones), epoch)
        warm = 1.0 if epoch >= cfg.warmup_epochs else 0.01 + (1 - 0.01) * epoch / cfg.warmup_epochs
        return [lr * decay * warm for lr in initial_lrs]
    if cfg.schedule != "cosine":
        raise ValueError(f"schedule must be 'cosine' or 'multistep', got {cfg.schedule!r}.")
    start, lr_min = cfg.warmup_lr_factor * cfg.base_lr, cfg.min_lr_factor * cfg.base_lr
    if epoch < cfg.warmup_epochs:
        lrs = [start + epoch * (lr - start) / cfg.warmup_epochs for lr in initial_lrs]
    elif epoch < cfg.epochs:
        cos = 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs))
        lrs = [lr_min + (lr - lr_min) * cos for lr in initial_lrs]
    else:  # the last epoch: the end of the single cosine cycle
        lrs = [lr_min for _ in initial_lrs]
    noise = _lr_noise(cfg, epoch)
    return [lr * (1 + noise) for lr in lrs]


def set_epoch_lr(optimizer: torch.optim.Optimizer, epoch: int, cfg: TrainConfig) -> list[float]:
    """Set every group's lr for ``epoch``; returns them."""
    lrs = epoch_learning_rates([g["initial_lr"] for g in optimizer.param_groups], epoch, cfg)
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr
    return lrs
