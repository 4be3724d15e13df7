"""The authors' Signal model (github.com/010129/Signal, checked out OUTSIDE this repository), built
from their code with our model's weights, for a same-run speed comparison.

    forward = authors_forward(code_dir, model)   # code_dir: their checkout; model: our SignalModel (rgbnt201)
    feats = forward(rgb, nir, tir, cam_ids)             # their test-time feature, [B, 3072] numpy

Their code is imported from ``code_dir`` (put first on ``sys.path``), never copied here. It
needs ``timm``, ``einops`` and ``yacs``; ``fvcore`` (used only by their FLOP counter) is replaced by
a stub when absent. Their CLIP loader reads a hard-coded ``ViT-B-16.pt`` and moves it to CUDA: it
is replaced by a random-init open_clip ViT-B-16 (OpenAI key names, no download), kept on the CPU;
then our model's weights are copied into theirs through the checkpoint key mapping, so both compute
the same function (checked: :func:`authors_forward` returns the largest difference to ours).
"""
from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from signal_core.checkpoint import official_key_to_ours


@dataclass
class AuthorsForward:
    """Their model in eval mode, fp32, on the CPU; call it like a feature engine."""

    model: torch.nn.Module
    commit: str
    max_abs_diff_to_ours: float  # on 2 random triples with cameras
    precision: str = "fp32"

    @torch.no_grad()
    def __call__(self, rgb, nir, tir, cam_ids=None) -> np.ndarray:
        """Their test call (processor.py: ``model(img, cam_label=camids, training=False)``)."""
        images = [torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in (rgb, nir, tir)]
        cams = torch.zeros(len(images[0]), dtype=torch.long) if cam_ids is None else torch.as_tensor(
            np.asarray(cam_ids), dtype=torch.long).clamp(min=0)  # their code has no "unknown camera"
        batch = {"RGB": images[0], "NI": images[1], "TI": images[2]}
        return self.model(batch, cam_label=cams, training=False).float().numpy()


def _stub_fvcore() -> None:
    """Their make_model imports fvcore's FLOP counter at import time; only their flops() uses it."""
    try:
        importlib.import_module("fvcore.nn.jit_handles")
        return
    except ImportError:
        pass

    def unavailable(*args, **kwargs):
        raise RuntimeError("fvcore is not installed (stubbed for the benchmark)")

    for name in ("fvcore", "fvcore.nn", "fvcore.nn.jit_handles"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["fvcore.nn"].flop_count = unavailable
    sys.modules["fvcore.nn.jit_handles"].elementwise_flop_counter = unavailable


def _random_clip_loader(cfg, backbone_name, h_resolution, w_resolution, vision_stride_size):
    """Replaces their ``load_clip_to_cpu``: their CLIP built from a random open_clip ViT-B-16 state."""
    import open_clip
    from modeling.clip import clip  # noqa: PLC0415 - the authors' package, on sys.path now

    state = open_clip.create_model("ViT-B-16", pretrained=None).state_dict()
    state = {k: v for k, v in state.items() if k != "logit_scale" or v.dim() == 0}
    model = clip.build_model(cfg, state, h_resolution, w_resolution, vision_stride_size)
    model.to = lambda *args, **kwargs: model  # their code calls clip_model.to("cuda"); stay on the CPU
    return model


def _copy_our_weights(theirs: torch.nn.Module, ours: torch.nn.Module) -> None:
    """Every parameter / buffer of their model from ours (their checkpoint names -> ours)."""
    our_state = ours.state_dict()
    state = {}
    for key, value in theirs.state_dict().items():
        if key.endswith("num_batches_tracked") or key.startswith(("bottleneck", "classifier")):
            continue  # the BN necks and classifiers: training only (our model may have no heads)
        src = our_state[official_key_to_ours(key)]
        state[key] = src.reshape(value.shape).to(value.dtype)
    theirs.load_state_dict(state, strict=False)
    missing = [k for k in theirs.state_dict() if k not in state
               and not (k.endswith("num_batches_tracked") or k.startswith(("bottleneck", "classifier")))]
    if missing:
        raise RuntimeError(f"their model has parameters we could not fill: {missing[:5]}")


def authors_forward(code_dir: str | Path, ours, num_classes: int = 171) -> AuthorsForward:
    """Their Signal (RGBNT201 config: ViT-B/16, 256 x 128, SIM k1 80, concat head) with ``ours``' weights.

    Args:
        code_dir: a checkout of github.com/010129/Signal (their ``modeling/`` and ``config/``).
        ours: our :class:`SignalModel` of the rgbnt201 preset (its cameras and weights are used).
    """
    root = Path(code_dir).expanduser().resolve()
    if not (root / "modeling" / "make_model.py").is_file():
        raise FileNotFoundError(f"{root} is not a checkout of github.com/010129/Signal (no modeling/make_model.py).")
    if tuple(ours.cfg.image_size) != (256, 128) or ours.cfg.embed_dim != 512:
        raise ValueError("the authors' model is their RGBNT201 ViT-B/16 (256 x 128, 512-d): benchmark it with "
                         f"--preset rgbnt201, not a {tuple(ours.cfg.image_size)} / {ours.cfg.embed_dim}-d model.")
    sys.path.insert(0, str(root))
    _stub_fvcore()
    from config import cfg as defaults  # noqa: PLC0415 - the authors' yacs config
    meta_arch = importlib.import_module("modeling.meta_arch")
    make_model = importlib.import_module("modeling.make_model")
    meta_arch.load_clip_to_cpu = _random_clip_loader
    cfg = defaults.clone()
    cfg.merge_from_file(str(root / "configs" / "RGBNT201" / "Signal.yml"))
    cfg.freeze()
    torch.manual_seed(0)
    model = make_model.make_frame(cfg, num_classes, ours.num_cameras).float().eval()
    _copy_our_weights(model, ours)
    g = torch.Generator().manual_seed(7)
    images = [torch.randn(2, 3, *ours.cfg.image_size, generator=g) for _ in range(3)]
    cams = torch.tensor([0, min(1, ours.num_cameras - 1)])
    forward = AuthorsForward(model, _commit(root), 0.0)
    with torch.no_grad():
        diff = np.abs(forward(*images, cams) - ours.extract_features(*images, cams).float().numpy()).max()
    forward.max_abs_diff_to_ours = float(diff)
    return forward


def _commit(root: Path) -> str:
    head = root / ".git" / "HEAD"
    return head.read_text().strip()[:40] if head.is_file() else "unknown (no .git: a source archive)"
