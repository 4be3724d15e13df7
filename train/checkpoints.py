"""Training checkpoints: model weights (safetensors, config inside) + optimizer state, per epoch.

``epoch_007.safetensors`` holds the model, ``epoch_007.state.pt`` the optimizer / grad-scaler
state; both are written atomically (temp file, then rename), the state first, so a checkpoint is
complete once its ``.safetensors`` file exists.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import torch

from signal_core import SignalModel, load_checkpoint, save_checkpoint
from signal_core.atomic import atomic_write

_NAME = re.compile(r"^epoch_(\d+)\.safetensors$")


def checkpoint_paths(out_dir: Path, epoch: int) -> tuple[Path, Path]:
    return out_dir / f"epoch_{epoch:03d}.safetensors", out_dir / f"epoch_{epoch:03d}.state.pt"


def save_training_checkpoint(model: SignalModel, optimizer: torch.optim.Optimizer,
                             scaler: Optional[torch.amp.GradScaler], epoch: int, out_dir: Path) -> Path:
    """Write the checkpoint of a finished ``epoch``; returns the model file."""
    weights, state = checkpoint_paths(out_dir, epoch)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"epoch": epoch, "optimizer": optimizer.state_dict(),
               "scaler": scaler.state_dict() if scaler is not None else {}}
    atomic_write(state, lambda tmp: torch.save(payload, tmp))
    save_checkpoint(model, weights, metadata={"epoch": str(epoch)})
    return weights


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the latest complete one in a run folder."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted((int(m[1]), p) for p in path.iterdir() if (m := _NAME.match(p.name)))
        if found:
            return found[-1][1]
        raise FileNotFoundError(f"no epoch_NNN.safetensors checkpoint in {path}")
    raise FileNotFoundError(f"checkpoint not found: {path}")


def read_training_checkpoint(path: str | Path, device: torch.device) -> tuple[SignalModel, dict]:
    """The model of a checkpoint and its training state {"epoch", "optimizer", "scaler"}."""
    weights = find_checkpoint(path)
    state_file = weights.with_name(weights.name.replace(".safetensors", ".state.pt"))
    if not state_file.is_file():
        raise FileNotFoundError(f"{weights} has no optimizer state beside it ({state_file.name}); "
                                "cannot resume exactly. Use it as --weights for evaluation instead.")
    state = torch.load(state_file, map_location=device, weights_only=True)
    return load_checkpoint(weights, device=device), state
