"""The training loop: one epoch at a time, named losses, mixed precision, exact resume.

Determinism: epoch ``e`` of rank ``r`` seeds torch and its loader from ``(seed, e, r)``
(train/seeding.py) and its sampler from ``(seed, e)``, so the batches, augmentations and therefore
the losses of an epoch depend only on the state at its start. A run resumed from the checkpoint of
epoch ``e - 1`` repeats epoch ``e`` exactly.

An optimizer step whose loss or gradients are not finite is skipped and logged (with fp16 the grad
scaler does this itself and lowers its scale), so one bad batch cannot poison the weights.
"""
from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from signal_core import SignalModel
from signal_core.modalities import MODALITIES

from .config import TrainConfig
from .optim import group_names, set_epoch_lr

log = logging.getLogger(__name__)


@dataclass
class AmpPolicy:
    """How training runs the forward pass: autocast dtype (None = fp32) and the fp16 grad scaler."""

    name: str  # fp32 | fp16 | bf16, after resolving "auto"
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> AmpPolicy:
        """``auto``: the authors' fp16 autocast + GradScaler on CUDA, fp32 elsewhere."""
        if name not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"train.precision must be auto, fp32, fp16 or bf16, got {name!r}.")
        if name == "auto":
            name = "fp16" if device.type == "cuda" else "fp32"
        if name == "fp16" and device.type != "cuda":
            raise ValueError("train.precision=fp16 needs a CUDA device; use bf16 or fp32 on the CPU.")
        dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        return cls(name, dtype, scaler)

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


def unwrap(model: nn.Module) -> SignalModel:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _all_finite(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> bool:
    """Whether the loss and every gradient are finite, agreed over all DDP ranks."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    flags = [torch.isfinite(loss.detach()).all()] + [torch.isfinite(g).all() for g in grads]
    ok = torch.stack(flags).all().to(torch.int32)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, amp: AmpPolicy) -> bool:
    """Backward and step; returns False when the step was skipped (loss or gradients not finite)."""
    if amp.scaler is not None:
        amp.scaler.scale(loss).backward()
        scale = amp.scaler.get_scale()
        amp.scaler.step(optimizer)  # skips the step on inf / nan gradients
        amp.scaler.update()  # ... and then lowers the scale
        return amp.scaler.get_scale() >= scale
    loss.backward()
    if not _all_finite(loss, optimizer):
        return False
    optimizer.step()
    return True


def _log_skip(epoch: int, step: int, loss_value: float, loss_ok: bool, amp: AmpPolicy) -> None:
    if not loss_ok:
        log.warning("epoch %d step %d: loss %s, optimizer step skipped", epoch, step, loss_value)
    elif amp.scaler is not None:  # routine while the fp16 scale settles
        log.info("epoch %d step %d: fp16 gradient overflow, step skipped (grad scaler scale now %g)",
                 epoch, step, amp.scaler.get_scale())
    else:
        log.warning("epoch %d step %d: gradients not finite, optimizer step skipped", epoch, step)


def train_one_epoch(model: nn.Module, loader: Iterable[dict], optimizer: torch.optim.Optimizer,
                    amp: AmpPolicy, device: torch.device, epoch: int, cfg: TrainConfig,
                    show_progress: bool = True) -> dict[str, float]:
    """Train for one epoch (1-based ``epoch``).

    Returns:
        The mean of each named loss over the steps whose loss was finite, ``loss``, ``lr`` (the
        highest group's), ``lrs`` (group name -> lr) and ``skipped_steps`` (optimizer steps
        skipped for a non-finite loss or gradient).

    Raises:
        ValueError: the loader gave no batch, or no step of the epoch had a finite loss (diverged).
    """
    lrs = set_epoch_lr(optimizer, epoch, cfg)
    model.train()
    sums: dict[str, float] = defaultdict(float)
    steps = finite = skipped = 0
    bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", disable=not show_progress, leave=False)
    for batch in bar:
        rgb, nir, tir = (batch[m].to(device, non_blocking=True) for m in MODALITIES)
        targets, cams = batch["pid"].to(device), batch["camid"].to(device)
        optimizer.zero_grad(set_to_none=True)
        with amp.autocast(device):
            out = model(rgb, nir, tir, cam_ids=cams, targets=targets)
        steps += 1
        loss_value, loss_ok = out.loss.item(), bool(torch.isfinite(out.loss.detach()).all())
        if not optimizer_step(out.loss, optimizer, amp):
            skipped += 1
            _log_skip(epoch, steps, loss_value, loss_ok, amp)
        if not loss_ok:
            continue
        finite += 1
        for name, value in out.losses.items():
            sums[name] += value.item()
        sums["loss"] += loss_value
        bar.set_postfix({k: f"{v / finite:.3f}" for k, v in sums.items()})
    if steps == 0:
        raise ValueError("the training loader produced no batch: is the train split smaller than one batch?")
    if finite == 0:
        raise ValueError(f"epoch {epoch}: the loss was not finite in any of its {steps} steps (training diverged); "
                         "resume from the last checkpoint with a lower train.base_lr or train.precision=fp32.")
    if skipped:
        log.warning("epoch %d: skipped %d of %d optimizer steps (loss or gradients not finite)", epoch, skipped, steps)
    return {**{k: v / finite for k, v in sums.items()}, "lr": max(lrs),
            "lrs": dict(zip(group_names(optimizer), lrs)), "skipped_steps": skipped}
