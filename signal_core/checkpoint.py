"""Checkpoints: the authors' ``Signal_model.pth`` files, and our own safetensors files.

The authors' keys are renamed to ours by an explicit table. Every key must be used and every
parameter filled: any mismatch is a ``CheckpointError`` naming the keys, never a silent
``strict=False``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .config import SignalConfig
from .model.signal_model import SignalModel
from .utils.atomic import atomic_write
from .weights_source import HUB_CONFIG, HUB_WEIGHTS, resolve_weights

StateDict = dict[str, torch.Tensor]
log = logging.getLogger(__name__)
_MOD = {"r": "rgb", "n": "nir", "t": "tir"}
_MOD_INDEX = {"r": "0", "n": "1", "t": "2"}

# (pattern on the authors' key, our key). Applied in order; the first match wins.
OFFICIAL_KEY_RULES: list[tuple[str, Any]] = [
    (r"^clip_vision_encoder\.cv_embed$", "backbone.camera_embed"),
    (r"^clip_vision_encoder\.base\.(.+)$", r"backbone.visual.\1"),
    (r"^bottleneck\.(.+)$", r"heads.concat.bn.\1"),
    (r"^classifier\.weight$", "heads.concat.classifier.weight"),
    (r"^bottleneck_var\.(.+)$", r"heads.fused.bn.\1"),
    (r"^classifier_var\.weight$", "heads.fused.classifier.weight"),
    (r"^bottleneck_([rnt])\.(.+)$", lambda m: f"heads.{_MOD[m[1]]}.bn.{m[2]}"),
    (r"^classifier_([rnt])\.weight$", lambda m: f"heads.{_MOD[m[1]]}.classifier.weight"),
    (r"^SIM\.token_selection\.W_([qkv])\.(weight|bias)$", r"sim.selection.\1_proj.\2"),
    (r"^SIM\.modal_interactive\.cross_attn\.(.+)$", r"sim.interaction.attn.\1"),
    (r"^SIM\.modal_interactive\.(ffn\.[02]|norm[12])\.(weight|bias)$", r"sim.interaction.\1.\2"),
    (r"^AlignM\.contra_temp$", "gam.tau"),
    (r"^AlignM\.DAS_([rnt])\.proj_q\.(weight|bias)$", lambda m: f"lam.samplers.{_MOD_INDEX[m[1]]}.proj_q.{m[2]}"),
    (r"^AlignM\.DAS_([rnt])\.conv_offset\.([024])\.(weight|bias)$",
     lambda m: f"lam.samplers.{_MOD_INDEX[m[1]]}.offset_net.{m[2]}.{m[3]}"),
]


class CheckpointError(ValueError):
    """A checkpoint does not fit the model; the message names the keys and what to do."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


_DIVERGED = "the run that wrote it diverged or the file is damaged; use an earlier checkpoint"


def check_finite(state: Mapping[str, torch.Tensor], name: str, remedy: str = _DIVERGED) -> None:
    """Refuse weights holding NaN or infinity (a diverged run, a damaged or tampered file); ``remedy`` says what
    to do (an exported graph is checked alike: ``signal_core.deploy.graph_check``).

    Raises:
        CheckpointError: naming the first such tensor (in name order) and how many there are.
    """
    bad = [k for k in sorted(state) if state[k].is_floating_point() and not bool(torch.isfinite(state[k]).all())]
    if bad:
        more = f" and {len(bad) - 1} other tensor(s)" if len(bad) > 1 else ""
        raise CheckpointError(f"{name} holds NaN or infinite weights (tensor {bad[0]!r}{more}): {remedy}.")


def official_key_to_ours(key: str) -> str:
    """Our parameter name for one of the authors' checkpoint keys (CheckpointError if unknown)."""
    for pattern, repl in OFFICIAL_KEY_RULES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    raise CheckpointError(f"unknown key in the authors' checkpoint: {key!r}")


def _read_official(path_or_state_dict: str | os.PathLike | StateDict) -> StateDict:
    if isinstance(path_or_state_dict, dict):
        state = path_or_state_dict
    else:
        path = Path(path_or_state_dict).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{path} could not be read as a tensor state dict "
                                  f"({exc.__class__.__name__}: {_first_line(exc)}).") from exc
    name = "the state dict" if isinstance(path_or_state_dict, dict) else str(path_or_state_dict)
    if not isinstance(state, dict):
        raise CheckpointError(f"{name} holds a {type(state).__name__}, not a state dict of tensors: "
                              "is it a Signal_model.pth?")
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    bad = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{name} is not a state dict of tensors (entries {bad[:5]} are not tensors).")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def infer_official_config(state: StateDict, cfg: SignalConfig) -> SignalConfig:
    """Fill what ``cfg`` leaves out (head layout, classes, cameras) from an authors' state dict,
    and check what it states against the checkpoint."""
    layout = "concat" if "classifier.weight" in state else "per_modality" if "classifier_r.weight" in state else None
    classes_key = {"concat": "classifier.weight", "per_modality": "classifier_r.weight"}.get(layout)
    cameras = state.get("clip_vision_encoder.cv_embed")
    found = {
        "head_layout": layout,
        "num_classes": state[classes_key].shape[0] if classes_key else None,
        "num_cameras": cameras.shape[0] if cameras is not None else None,
    }
    changes = {}
    for name, value in found.items():
        given = getattr(cfg, name)
        if given is None:
            changes[name] = value
        elif value is not None and given != value:
            raise CheckpointError(f"config says {name}={given!r} but the checkpoint has {value!r}; "
                                  f"leave {name}=None to take it from the checkpoint.")
    pos = state.get("clip_vision_encoder.base.positional_embedding")
    if pos is not None and pos.shape[0] - 1 != cfg.num_patches:
        raise CheckpointError(
            f"the checkpoint's positional embedding has {pos.shape[0] - 1} patches but image_size "
            f"{cfg.image_size} with patch {cfg.patch_size} gives {cfg.num_patches}: use the dataset's preset."
        )
    return cfg.replace(**changes) if changes else cfg


def convert_official_state_dict(state: StateDict, model: SignalModel) -> StateDict:
    """Rename the authors' keys to ``model``'s, checking that every key and parameter match."""
    ours = model.state_dict()
    converted: StateDict = {}
    unknown, unused = [], []
    for key, value in state.items():
        try:
            name = official_key_to_ours(key)
        except CheckpointError:
            unknown.append(key)
            continue
        if name not in ours:
            unused.append(f"{key} -> {name}")
            continue
        converted[name] = value.reshape(ours[name].shape) if name == "backbone.camera_embed" else value
    missing = sorted(set(ours) - set(converted))
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(ours[k].shape)}"
             for k, v in converted.items() if v.shape != ours[k].shape]
    problems = []
    if unknown:
        problems.append(f"keys this converter does not know: {unknown}")
    if unused:
        problems.append(f"keys with no place in the model built from the config: {unused} "
                        "(check use_sim / use_gam / use_lam / head_layout / lam_offsets)")
    if missing:
        problems.append(f"model parameters the checkpoint does not fill: {missing}")
    if wrong:
        problems.append(f"shape mismatches: {wrong}")
    if problems:
        raise CheckpointError("the authors' checkpoint does not fit: " + "; ".join(problems))
    return converted


def load_official_checkpoint(path_or_state_dict: str | os.PathLike | StateDict,
                             cfg: SignalConfig) -> SignalModel:
    """Build a model from one of the authors' ``Signal_model.pth`` files (or its state dict).

    Args:
        path_or_state_dict: the file (read with ``torch.load(weights_only=True)``) or a state dict.
        cfg: the dataset's preset, e.g. ``SignalConfig.preset("rgbnt201")``; head layout, number
            of classes and cameras are read off the checkpoint where ``cfg`` leaves them None.

    Returns:
        The model in eval mode, every parameter and buffer filled from the checkpoint.

    Raises:
        CheckpointError: an unreadable file, NaN or infinite weights, keys or shapes that do not fit.
    """
    state = _read_official(path_or_state_dict)
    check_finite(state, "the state dict" if isinstance(path_or_state_dict, dict) else str(path_or_state_dict))
    cfg = infer_official_config(state, cfg.replace(pretrained=None))
    model = SignalModel(cfg)
    model.load_state_dict(convert_official_state_dict(state, model), strict=True)
    return model.eval()


# --- our own checkpoints ------------------------------------------------------------------------
_CONFIG_KEY = "signal_config"
_CHECKSUM_KEY = "tensors_sha256"


def tensors_sha256(tensors: StateDict) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(model: SignalModel, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Save weights as safetensors, with the config (JSON) and a SHA-256 of the tensors in the
    header; written atomically. ``metadata``: more string entries for the header."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {**(metadata or {}), _CONFIG_KEY: model.cfg.replace(pretrained=None).to_json(),
            _CHECKSUM_KEY: tensors_sha256(tensors)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string entries of a safetensors header (our config, checksum, epoch, training config).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is not a readable safetensors file (random bytes, truncated, a
            pickle); the message names it.
    """
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # SafetensorError, OSError, ...: never a traceback for a bad file
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint (damaged, truncated or "
                              f"another format: {exc.__class__.__name__}: {_first_line(exc)}).") from exc


def read_checkpoint_config(path: str | os.PathLike) -> SignalConfig:
    """The config stored in one of our safetensors checkpoints (or its Hub folder's ``config.json``)."""
    return _stored_config(read_checkpoint_metadata(path), Path(path).expanduser())


def _stored_config(meta: dict[str, str], path: Path) -> SignalConfig:
    """The header's config; for a Hub folder's ``model.safetensors``, its ``config.json`` (which must agree
    with the header when both hold one: a folder of other weights' config is refused)."""
    sidecar = path.parent / HUB_CONFIG
    if path.name != HUB_WEIGHTS or not sidecar.is_file():
        return _config_from_metadata(meta, path)
    try:
        cfg = SignalConfig.from_json_file(sidecar)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    if _CONFIG_KEY in meta and _config_from_metadata(meta, path).replace(pretrained=None) != cfg.replace(
            pretrained=None):
        raise CheckpointError(f"{sidecar} does not describe the model in {path.name} (its header holds another "
                              "config): write the folder again (save_pretrained or python -m train.convert).")
    return cfg


def _config_from_metadata(meta: dict[str, str], path: str | os.PathLike) -> SignalConfig:
    if _CONFIG_KEY not in meta:
        raise CheckpointError(f"{path} has no Signal config in its header: is it one of our checkpoints? "
                              "For the authors' .pth files use load_official_checkpoint.")
    try:
        return SignalConfig.from_dict(json.loads(meta[_CONFIG_KEY]))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: the Signal config in its header is not valid ({exc}).") from exc


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> SignalModel:
    """Load one of our safetensors checkpoints (config included) into a new model, eval mode.

    The tensors are checked against the SHA-256 in the header (files written before checksums were
    stored, with no ``tensors_sha256`` entry, load unverified) and must be finite (no NaN or infinity).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a readable checkpoint, a checksum mismatch (corrupt tensor data), NaN or
            infinite weights, or tensors that do not fit the stored config; the message names the file.
    """
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    meta = read_checkpoint_metadata(path)
    model = SignalModel(_stored_config(meta, path))
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: the tensor data cannot be read (damaged or truncated file: "
                              f"{exc.__class__.__name__}: {_first_line(exc)}).") from exc
    expected = meta.get(_CHECKSUM_KEY)
    if expected is None:
        log.debug("%s has no tensor checksum (written by an older version): loaded unverified", path)
    elif tensors_sha256(state) != expected:
        raise CheckpointError(f"{path} is corrupt: its tensor data do not match the SHA-256 in its header "
                              "(the file was damaged or modified after it was written); use another copy.")
    check_finite(state, str(path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit the config stored in it: {exc}") from exc
    return model.to(device).eval()


def with_registration(model: SignalModel, registration: str | None) -> SignalModel:
    """``model`` with ``cfg.registration`` set to ``registration`` (None: as it is). Registration has no
    weights, so any checkpoint takes any of :data:`signal_core.config.REGISTRATIONS`; the result keeps
    ``model``'s device and train / eval mode, and is ``model`` itself when nothing changes.

    Raises:
        ValueError: an unknown registration (the message lists the known ones).
    """
    if registration is None or registration == model.cfg.registration:
        return model
    changed = SignalModel(model.cfg.replace(registration=registration, pretrained=None))  # validates the name
    changed.load_state_dict(model.state_dict(), strict=True)
    device = next(model.parameters()).device
    return changed.to(device).train(model.training)


def load_weights(weights: str | os.PathLike, official_cfg: SignalConfig | None = None,
                 device: str | torch.device = "cpu", registration: str | None = None) -> SignalModel:
    """Weights named any way :func:`signal_core.weights_source.resolve_weights` takes (a file, a Hub-style
    folder, ``hf-hub:owner/repo``, ``hf://owner/repo/file``): our ``.safetensors`` checkpoint (its config is
    in the file or the folder's ``config.json``), or the authors' ``Signal_model.pth``, built from
    ``official_cfg`` (the dataset's preset; classes and cameras are read off the checkpoint).
    ``registration``: the model's image-level registration in place of the stored one (None: the
    checkpoint's own, ``official_cfg``'s for a ``.pth``; :func:`with_registration`).

    Raises:
        WeightsSourceError: weights that cannot be found or fetched (a ValueError).
        CheckpointError: a ``.pth`` without ``official_cfg``, or weights that do not fit.
        ValueError: an unknown ``registration``.
    """
    path = resolve_weights(weights)
    if path.suffix == ".safetensors":
        return with_registration(load_checkpoint(path, device=device), registration)
    if official_cfg is None:
        raise CheckpointError(f"{Path(path).name} is not one of our .safetensors checkpoints; to load the "
                              "authors' Signal_model.pth, give the dataset's preset config.")
    model = load_official_checkpoint(path, official_cfg.replace(num_classes=None, num_cameras=None)).to(device)
    return with_registration(model, registration)
