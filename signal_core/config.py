"""Model configuration: one typed dataclass with commented defaults and named presets.

The defaults follow the authors' code (github.com/010129/Signal), which produced the paper's
numbers and the released checkpoints. Where the paper reads differently, an opt-in switch offers
the paper's reading (``trainable_selection``, ``offset_channels=2``, ``reference_points="paper"``);
where the authors' GAM / LAM cannot learn, opt-in fixes (docs/alignment.md): ``gam_standardise``,
``gam_learn_tau``, ``gam_identity_negatives``, ``reference_points="centred"``, ``lam_detach``.

Example:
    >>> cfg = SignalConfig.preset("rgbnt201", k1=64, use_lam=False)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEAD_LAYOUTS = ("concat", "per_modality")
# fields checked one by one first (SignalConfig.validate); None is allowed where the type says so
POSITIVE_FIELDS = ("patch_size", "width", "layers", "heads", "embed_dim", "k1", "k2", "interaction_heads",
                   "lam_stride", "gam_tau", "num_cameras", "num_classes")
NON_NEGATIVE_FIELDS = ("camera_embed_scale", "gam_label_smoothing", "lam_offset_range", "id_weight", "triplet_weight",
                       "label_smoothing", "alpha", "beta")
SELECTIONS = ("union", "intersection")
REFERENCE_POINTS = ("official", "paper", "centred")
LAM_OFFSETS = ("own", "matched")  # where NIR / TIR offsets come from (model/lam.py)
# image-level registration of NIR / TIR to RGB before the encoder (model/registration.py); "none" = the authors'
REGISTRATIONS = ("none", "orientation", "orientation_phase", "magnitude", "magnitude_phase")


@dataclass
class SignalConfig:
    """Everything that defines a Signal model (architecture, ablation switches, loss weights).

    Training hyper-parameters (optimiser, schedule, batch) live in ``train/``, not here.
    """

    # --- backbone: CLIP ViT visual tower built from open_clip modules --------------------------
    image_size: tuple[int, int] = (256, 128)  # input H x W; persons 256x128, vehicles 128x256
    patch_size: int = 16  # patch size = stride of the patch embedding
    width: int = 768  # transformer width (ViT-B: 768)
    layers: int = 12  # transformer depth (ViT-B: 12)
    heads: int = 12  # attention heads in the backbone (ViT-B: 12)
    embed_dim: int = 512  # D: output of ln_post + proj, applied to every token
    pretrained: str | None = None  # None (random init) | "openai" | path to a weight file
    trust_torchscript: bool = False  # allow a TorchScript CLIP file (unpickles code: trust it)
    camera_embed: bool = True  # SIE camera embedding, added to the class token only
    camera_embed_scale: float = 1.0  # SIE coefficient
    num_cameras: int | None = None  # camera embeddings; None = from data or checkpoint
    num_classes: int | None = None  # training identities; None = from data or checkpoint
    head_layout: str | None = None  # "concat" (DIRECT=1) | "per_modality" (DIRECT=0)

    # --- SIM: selective interaction module -------------------------------------------------------
    use_sim: bool = True  # ablation switch: token selection + modal interaction (f_rnt)
    k1: int = 80  # tokens kept per modality by intra-modal selection
    k2: int | None = None  # tokens chosen by each query in inter-modal selection; None = 2*k1
    selection: str = "union"  # how intra and inter masks combine: "union" | "intersection"
    interaction_heads: int = 8  # heads of the modal-interaction cross-attention
    trainable_selection: bool = False  # paper reading: W_q/W_k get gradients (straight-through)

    # --- GAM: global alignment in Gram space -----------------------------------------------------
    use_gam: bool = True  # ablation switch: Gram-volume contrastive loss
    gam_tau: float = 0.07  # initial value of the learnable temperature (a plain divisor)
    gam_label_smoothing: float = 0.1  # label smoothing of the two volume cross-entropies
    # The authors' GAM sits at chance (ln B; docs/alignment.md). Fixes, off by default:
    gam_standardise: bool = False  # standardise mean-patch features over the batch before L2 norm
    gam_learn_tau: bool = True  # False: tau stays at gam_tau (the fix pairs it with gam_standardise)
    gam_identity_negatives: bool = False  # True: same-identity samples are not negatives

    # --- LAM: local alignment with deformable sampling -------------------------------------------
    use_lam: bool = True  # ablation switch: deformable sampling + MSE alignment loss
    share_offsets: bool = False  # one sampler for all modalities (paper Table 5 "Sharing")
    offset_channels: int = 1  # 1 = authors' code (broadcast to dy, dx); 2 = paper reading (the fix)
    # "official" (linspace(.5, n-.5)/(n-1), overshoots +1) | "paper" (-1..1) | "centred" (window centres, the fix)
    reference_points: str = "official"
    lam_detach: bool = False  # True: LAM samples detached tokens (no feature collapse; the fix)
    lam_stride: int = 4  # kernel = stride of the depthwise offset conv: grid h/s x w/s points
    lam_offset_range: float = 2.0  # offsets are tanh(o) * range / (n - 1)
    # "own" (paper, authors: each modality's offsets from its own tokens) | "matched" (NIR / TIR found by
    # a local cost volume against RGB, up to lam_match_radius tokens; an extension, docs/alignment.md)
    lam_offsets: str = "own"
    lam_match_radius: int = 2

    # --- registration: warp NIR / TIR onto RGB before the encoder (not in the paper; docs/alignment.md) ---
    # "none" (authors) | "orientation" (gradient-orientation correlation, chosen by measurement) | "orientation_phase"
    # | "magnitude" | "magnitude_phase" (the other measured candidates)
    registration: str = "none"
    registration_window: float = 0.3125  # largest displacement searched, x the shorter side (20 px at 128 x 64)
    registration_min_confidence: float = 1.1  # peak ratio below which the displacement is 0

    # --- losses ------------------------------------------------------------------------------
    id_weight: float = 0.25  # weight of each label-smoothed cross-entropy
    triplet_weight: float = 1.0  # weight of each soft-margin batch-hard triplet loss
    label_smoothing: float = 0.1  # epsilon of the ID cross-entropy
    alpha: float = 0.2  # weight of the GAM loss
    beta: float = 0.2  # weight of the LAM loss

    def __post_init__(self) -> None:
        self.image_size = tuple(int(v) for v in self.image_size)  # type: ignore[assignment]
        self.validate()

    # ------------------------------------------------------------------------------------------
    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid (h, w)."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @property
    def num_patches(self) -> int:
        h, w = self.grid_size
        return h * w

    @property
    def k2_effective(self) -> int:
        return 2 * self.k1 if self.k2 is None else self.k2

    @property
    def lam_grid_size(self) -> tuple[int, int]:
        h, w = self.grid_size
        return h // self.lam_stride, w // self.lam_stride

    @property
    def feature_dim(self) -> int:
        """Size of the retrieval feature returned by ``extract_features``."""
        return self.embed_dim * (6 if self.use_sim else 3)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what to do when a value cannot work.

        Single values are checked first (sign, finiteness), then the relations between fields, so
        the message names the setting that is wrong rather than one derived from it.
        """
        for name in POSITIVE_FIELDS + NON_NEGATIVE_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            low_ok = value > 0 if name in POSITIVE_FIELDS else value >= 0
            if not (low_ok and math.isfinite(value)):
                raise ValueError(f"{name} must be {'positive' if name in POSITIVE_FIELDS else '>= 0'}, got {value}.")
        if len(self.image_size) != 2 or min(self.image_size) < self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be two sides (height, width) of at least patch_size "
                             f"{self.patch_size} pixels (e.g. 256x128 or 128x256).")
        h, w = self.image_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} must be two sides divisible by patch_size "
                f"{self.patch_size} (e.g. 256x128 or 128x256)."
            )
        if self.head_layout is not None and self.head_layout not in HEAD_LAYOUTS:
            raise ValueError(f"head_layout must be one of {HEAD_LAYOUTS} or None, got {self.head_layout!r}.")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}.")
        if self.reference_points not in REFERENCE_POINTS:
            raise ValueError(
                f"reference_points must be one of {REFERENCE_POINTS}, got {self.reference_points!r}."
            )
        if self.offset_channels not in (1, 2):
            raise ValueError(f"offset_channels must be 1 (authors' code) or 2 (paper), got {self.offset_channels}.")
        if self.use_sim:
            n = self.num_patches
            if not 1 <= self.k1 <= n:
                raise ValueError(f"k1={self.k1} must be in [1, {n}] (the number of patches per modality).")
            if not 1 <= self.k2_effective <= 2 * n:
                raise ValueError(f"k2={self.k2_effective} must be in [1, {2 * n}] (patches of two modalities).")
            if self.embed_dim % self.interaction_heads:
                raise ValueError(
                    f"embed_dim {self.embed_dim} must be divisible by interaction_heads {self.interaction_heads}."
                )
        if self.lam_offsets not in LAM_OFFSETS:
            raise ValueError(f"lam_offsets must be one of {LAM_OFFSETS}, got {self.lam_offsets!r}.")
        if self.lam_offsets == "matched" and self.share_offsets:
            raise ValueError("lam_offsets='matched' needs one sampler per modality: set share_offsets=False.")
        if self.lam_match_radius < 1:
            raise ValueError(f"lam_match_radius must be at least 1 token, got {self.lam_match_radius}.")
        if self.registration not in REGISTRATIONS:
            raise ValueError(f"registration must be one of {REGISTRATIONS}, got {self.registration!r}.")
        if not 0 < self.registration_window <= 0.5:
            raise ValueError(f"registration_window must be in (0, 0.5] (a fraction of the shorter image side), "
                             f"got {self.registration_window}.")
        if not (self.registration_min_confidence >= 0 and math.isfinite(self.registration_min_confidence)):
            raise ValueError(f"registration_min_confidence must be a finite peak ratio >= 0 (1.1 by default), "
                             f"got {self.registration_min_confidence}.")
        if self.use_lam:
            hk, wk = self.lam_grid_size
            if hk < 2 or wk < 2:
                raise ValueError(
                    f"LAM needs at least a 2x2 grid of sampling points, but patch grid {self.grid_size} "
                    f"with lam_stride {self.lam_stride} gives {hk}x{wk}: lower lam_stride or use_lam=False."
                )

    # ------------------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SignalConfig:
        """A named configuration, with any field overridden by keyword.

        Args:
            name: "rgbnt201", "rgbnt100", "msvr310" (ViT-B/16, the authors' values) or "tiny"
                (a few-layer narrow ViT for tests and CPU experiments).
            **overrides: fields of :class:`SignalConfig` to change.
        """
        key = name.lower()
        if key not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        values = {**PRESETS[key], **overrides}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"Unknown config field(s) {unknown}; see signal_core.config.SignalConfig.")
        return cls(**values)

    def replace(self, **changes: Any) -> SignalConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write the config as a JSON file (a Hub folder's ``config.json``: enough to rebuild the model),
        atomically; ``pretrained`` is left out (the trained weights lie beside it)."""
        from .utils.atomic import write_json

        return write_json(path, self.replace(pretrained=None).to_dict(), sort_keys=True)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> SignalConfig:
        """The config in a JSON file written by :meth:`save_json`.

        Raises:
            ValueError: not readable, not JSON, or not a valid config; the message names the file.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            return cls.from_dict(data)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not a valid Signal config ({' '.join(str(exc).split())}).") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignalConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if not (k in _RETIRED_FIELDS and not v)}  # older headers
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown config field(s) {unknown} (saved by a newer version?).")
        return cls(**data)


_RETIRED_FIELDS = ("extra",)  # fields older checkpoints may carry (empty), ignored on load

PRESETS: dict[str, dict[str, Any]] = {
    # RGBNT201 persons, the authors' configs/RGBNT201/Signal.yml (DIRECT=1, TOPK=80)
    "rgbnt201": dict(image_size=(256, 128), head_layout="concat", k1=80, alpha=0.2, beta=0.2),
    # RGBNT100 vehicles, configs/RGBNT100/Signal.yml (DIRECT=0, TOPK=112)
    "rgbnt100": dict(image_size=(128, 256), head_layout="per_modality", k1=112, alpha=0.1, beta=0.1),
    # MSVR310 vehicles, configs/MSVR310/Signal.yml (DIRECT=0, TOPK=64)
    "msvr310": dict(image_size=(128, 256), head_layout="per_modality", k1=64, alpha=0.2, beta=0.01),
    # A narrow 2-layer ViT on 64x32 inputs (8x4 patches of 8 px): tests and CPU experiments.
    "tiny": dict(
        image_size=(64, 32), patch_size=8, width=64, layers=2, heads=4, embed_dim=32,
        head_layout="concat", k1=8, interaction_heads=4, lam_stride=2,
    ),
}
