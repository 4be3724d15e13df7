"""The training loop: one epoch at a time, named losses, mixed precision, exact resume.

Determinism: epoch ``e`` seeds torch with ``seed + e`` and its sampler / loader with ``e``, so the
batches, augmentations and therefore the losses of an epoch depend only on the state at its
start. A run resumed from the checkpoint of epoch ``e - 1`` repeats epoch ``e`` exactly.
"""
from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from signal_core import SignalModel

from .config import TrainConfig
from .optim import set_epoch_lr


@dataclass
class Precision:
    """How the forward pass runs: autocast dtype (None = fp32) and whether a grad scaler is used."""

    dtype: Optional[torch.dtype]
    scaler: Optional[torch.amp.GradScaler]

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> "Precision":
        if name not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {name!r}.")
        if name == "auto":
            name = "fp32" if device.type != "cuda" else "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if name == "fp16" and device.type != "cuda":
            raise ValueError("fp16 training needs a CUDA device; use bf16 or fp32 on the CPU.")
        dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        return cls(dtype, scaler)

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


def unwrap(model: nn.Module) -> SignalModel:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def train_one_epoch(model: nn.Module, loader: Iterable[dict], optimizer: torch.optim.Optimizer,
                    precision: Precision, device: torch.device, epoch: int, cfg: TrainConfig,
                    show_progress: bool = True) -> dict[str, float]:
    """Train for one epoch (1-based ``epoch``); returns the mean of each named loss and the lr."""
    lrs = set_epoch_lr(optimizer, epoch, cfg)
    model.train()
    sums: dict[str, float] = defaultdict(float)
    count = 0
    bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", disable=not show_progress, leave=False)
    for batch in bar:
        rgb, nir, tir = (batch[m].to(device, non_blocking=True) for m in ("rgb", "nir", "tir"))
        targets, cams = batch["pid"].to(device), batch["camid"].to(device)
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast(device):
            out = model(rgb, nir, tir, cam_ids=cams, targets=targets)
        if precision.scaler is not None:
            precision.scaler.scale(out.loss).backward()
            precision.scaler.step(optimizer)
            precision.scaler.update()
        else:
            out.loss.backward()
            optimizer.step()
        count += 1
        for name, value in out.losses.items():
            sums[name] += value.item()
        sums["loss"] += out.loss.item()
        bar.set_postfix({k: f"{v / count:.3f}" for k, v in sums.items()})
    if count == 0:
        raise ValueError("the training loader produced no batch: is the train split smaller than one batch?")
    return {**{k: v / count for k, v in sums.items()}, "lr": max(lrs)}


def append_history(path: Path, record: dict) -> None:
    """Append one JSON line (per-epoch losses) to ``path``."""
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
