"""Training checkpoints: model weights (safetensors, config inside) + optimizer state, per epoch.

``epoch_007.safetensors`` holds the model (with its SHA-256, the epoch and the training config in
the header), ``epoch_007.state.pt`` the optimizer / grad-scaler state; both are written atomically
(temp file, then rename), the state first, so a checkpoint is complete once its ``.safetensors``
file exists. Reading checks both files: a damaged one is a ``CheckpointError`` naming it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from signal_core import CheckpointError, SignalModel, load_checkpoint, read_checkpoint_metadata, save_checkpoint
from signal_core.checkpoint import check_finite
from signal_core.utils.atomic import atomic_write

_NAME = re.compile(r"^epoch_(\d+)\.safetensors$")
TRAIN_CONFIG_KEY = "train_config"  # the safetensors header entry holding the training config (JSON)


@dataclass
class TrainingCheckpoint:
    """What ``--resume`` needs from a checkpoint."""

    model: SignalModel  # on the requested device, eval mode
    epoch: int  # the last finished epoch
    optimizer: dict  # optimizer.state_dict(), tensors on the CPU
    scaler: dict  # GradScaler.state_dict() ({} without a scaler)
    train_config: dict[str, Any] | None  # the TrainConfig it was trained with (None: older file)
    path: Path  # the .safetensors file
    state_path: Path  # the .state.pt file beside it


def checkpoint_paths(out_dir: Path, epoch: int) -> tuple[Path, Path]:
    return out_dir / f"epoch_{epoch:03d}.safetensors", out_dir / f"epoch_{epoch:03d}.state.pt"


def save_training_checkpoint(model: SignalModel, optimizer: torch.optim.Optimizer,
                             scaler: torch.amp.GradScaler | None, epoch: int, out_dir: Path,
                             train_config: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint of a finished ``epoch`` (and the training config); returns the model file."""
    weights, state = checkpoint_paths(out_dir, epoch)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"epoch": epoch, "optimizer": optimizer.state_dict(),
               "scaler": scaler.state_dict() if scaler is not None else {}}
    atomic_write(state, lambda tmp: torch.save(payload, tmp))
    metadata = {"epoch": str(epoch)}
    if train_config is not None:
        metadata[TRAIN_CONFIG_KEY] = json.dumps(train_config, sort_keys=True)
    save_checkpoint(model, weights, metadata=metadata)
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


def read_training_state(state_file: Path) -> dict:
    """The optimizer / scaler state file, on the CPU (the optimizer moves it to its parameters)."""
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (truncated zip), EOFError, ...
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"{state_file} is not a readable training state (damaged, truncated or another "
                              f"format: {exc.__class__.__name__}: {first_line}).") from exc
    if not isinstance(state, dict) or not {"epoch", "optimizer", "scaler"} <= set(state):
        raise CheckpointError(f"{state_file} is not a training state file (expected epoch, optimizer and scaler).")
    moments = state["optimizer"].get("state", {}) if isinstance(state["optimizer"], dict) else {}
    check_finite({f"optimizer.state.{p}.{k}": v for p, entry in moments.items() for k, v in entry.items()
                  if isinstance(v, torch.Tensor)}, str(state_file))
    return state


def read_training_checkpoint(path: str | Path, device: torch.device) -> TrainingCheckpoint:
    """The model of a checkpoint, its training state and the training config stored with it.

    Raises:
        FileNotFoundError: no checkpoint, or no optimizer state beside it.
        CheckpointError: either file is damaged, or they disagree on the epoch.
    """
    weights = find_checkpoint(path)
    state_file = weights.with_name(weights.name.replace(".safetensors", ".state.pt"))
    if not state_file.is_file():
        raise FileNotFoundError(f"{weights} has no optimizer state beside it ({state_file.name}); "
                                "cannot resume exactly. Use it as --weights for evaluation instead.")
    model = load_checkpoint(weights, device=device)
    meta = read_checkpoint_metadata(weights)
    state = read_training_state(state_file)
    if "epoch" in meta and meta["epoch"] != str(state["epoch"]):
        raise CheckpointError(f"{weights} is epoch {meta['epoch']} but {state_file.name} is epoch {state['epoch']}.")
    saved = None
    if TRAIN_CONFIG_KEY in meta:
        try:
            saved = json.loads(meta[TRAIN_CONFIG_KEY])
        except ValueError as exc:
            raise CheckpointError(f"{weights}: the training config in its header is not valid JSON ({exc}).") from exc
    return TrainingCheckpoint(model, int(state["epoch"]), state["optimizer"], state["scaler"], saved, weights,
                              state_file)


def load_optimizer_state(optimizer: torch.optim.Optimizer, checkpoint: TrainingCheckpoint) -> None:
    """Restore the optimizer from a checkpoint (its tensors move to the parameters' device).

    Raises:
        CheckpointError: the saved state does not fit (other parameter groups: the groups follow
            the distinct learning rates, so changing base_lr / backbone_lr / *_factor can change them).
    """
    try:
        optimizer.load_state_dict(checkpoint.optimizer)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{checkpoint.state_path}: the optimizer state does not fit this model and config "
                              f"({str(exc).splitlines()[0]}); resume with the learning-rate settings it was "
                              "trained with.") from exc
