"""Loading pretrained CLIP visual weights into the backbone, at any input size.

Sources: ``"openai"`` (open_clip's ``ViT-B-16-quickgelu`` / ``openai`` weights, downloaded and cached
by open_clip), or a local file: ``.safetensors``, ``.bin`` / ``.pt`` / ``.pth`` state dicts (read
with ``torch.load(weights_only=True)``) or, only with ``trust_torchscript=True``, OpenAI's original
TorchScript ``ViT-B-16.pt`` (loading TorchScript runs pickled code: trust the file first).
"""
from __future__ import annotations

import math
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

from .backbone import CLIPVisionBackbone

_PREFIXES = ("visual.", "clip_vision_encoder.base.", "module.visual.")


def resize_positional_embedding(posemb: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resize a square ViT positional grid to ``grid`` (h, w) like the authors: bilinear,
    align_corners=False, the class-token entry kept.

    Args:
        posemb: [1 + n * n, width] embedding of a square n x n grid.
        grid: target patch grid (h, w).

    Returns:
        [1 + h * w, width] embedding.
    """
    cls, patches = posemb[:1], posemb[1:]
    n = math.isqrt(patches.shape[0])
    if n * n != patches.shape[0]:
        raise ValueError(f"positional embedding of {patches.shape[0]} patches is not a square grid.")
    if (n, n) == tuple(grid):
        return posemb
    patches = patches.reshape(1, n, n, -1).permute(0, 3, 1, 2).float()  # [1, width, n, n]
    patches = F.interpolate(patches, size=tuple(grid), mode="bilinear", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(posemb.dtype)
    return torch.cat([cls, patches], dim=0)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def _read_state_dict(path: Path, trust_torchscript: bool) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"CLIP weight file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if _is_torchscript(path):
        if not trust_torchscript:
            raise ValueError(
                f"{path} is a TorchScript archive; loading it runs pickled code. If you trust the file, "
                "pass trust_torchscript=True (config field), or convert it to safetensors first."
            )
        return torch.jit.load(str(path), map_location="cpu").state_dict()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling error: not a plain tensor state dict
        raise ValueError(f"{path} is not a readable state dict ({exc.__class__.__name__}: {exc}).") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (found {type(state).__name__}).")
    return state


def _visual_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _PREFIXES:
        picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if picked:
            return picked
    return dict(state)


def read_clip_visual_weights(source: str, trust_torchscript: bool = False) -> dict[str, torch.Tensor]:
    """The visual tower's tensors, keyed like open_clip ``visual.*`` without the prefix."""
    if source == "openai":
        import open_clip

        try:
            model = open_clip.create_model("ViT-B-16-quickgelu", pretrained="openai")
        except RuntimeError as exc:  # open_clip's download failure (offline, hub unreachable)
            raise ValueError(
                f"could not get the OpenAI CLIP ViT-B/16 weights through open_clip ({exc}). Offline? Set "
                "pretrained to a local .safetensors / .bin file, or to None for a random init."
            ) from exc
        return {k: v.float() for k, v in model.visual.state_dict().items()}
    return _visual_keys(_read_state_dict(Path(source).expanduser(), trust_torchscript))


def load_clip_weights(backbone: CLIPVisionBackbone, source: str, trust_torchscript: bool = False) -> None:
    """Fill ``backbone.visual`` from CLIP weights, resizing the positional grid to the input size.

    Raises:
        ValueError: a key is missing or unexpected, or a shape does not fit (names them).
    """
    state = read_clip_visual_weights(source, trust_torchscript)
    target = backbone.visual.state_dict()
    if "positional_embedding" in state:
        h, w = backbone.visual.grid_size
        state["positional_embedding"] = resize_positional_embedding(state["positional_embedding"], (h, w))
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    if missing or unexpected:
        raise ValueError(
            f"CLIP weights from {source!r} do not fit the ViT backbone: missing {missing[:8]}"
            f"{'...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
            f"{'...' if len(unexpected) > 8 else ''}. Expected a ViT-B/16 visual tower."
        )
    wrong = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in target.items()
             if state[k].shape != v.shape]
    if wrong:
        raise ValueError(f"CLIP weights from {source!r} have the wrong shapes (file vs model): {wrong[:8]}")
    backbone.visual.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
