"""The Signal model: a shared CLIP ViT encoder, SIM, GAM, LAM and BNNeck identity heads.

Reads top to bottom: encode the three modalities in one backbone call, select and fuse tokens
(SIM), then, in training, align globally (GAM) and locally (LAM) and compute the named losses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import SignalConfig
from ..modalities import MODALITIES
from .backbone import CLIPVisionBackbone
from .gam import GlobalAlignment
from .heads import build_heads
from .lam import LAMOutput, LocalAlignment
from .losses import batch_hard_triplet, label_smoothed_ce
from .precision import PRECISION_DTYPES, ShadowWeights, resolve_precision
from .registration import Registration, displacement_on_grid
from .sim import SelectionMasks, SelectiveInteraction


@dataclass
class SignalOutput:
    """Named outputs of :meth:`SignalModel.forward`."""

    cls_tokens: torch.Tensor  # [B, 3, D] class token per modality (RGB, NIR, TIR), before BN
    fused: torch.Tensor | None  # [B, 3D] f_rnt from SIM, before BN (None without SIM)
    logits: dict[str, torch.Tensor] = field(default_factory=dict)  # head name -> [B, C]
    masks: SelectionMasks | None = None  # SIM token masks
    volume: torch.Tensor | None = None  # [B, B] GAM Gram volumes
    lam: LAMOutput | None = None  # LAM sampling
    losses: dict[str, torch.Tensor] = field(default_factory=dict)  # weighted terms, sum = loss
    loss: torch.Tensor | None = None  # total loss (when targets were given)
    displacement: torch.Tensor | None = None  # [B, 2, 2] (NIR, TIR) x (x, y) px found by registration

    @property
    def feature(self) -> torch.Tensor:
        """Retrieval feature: cat(cls_R, cls_N, cls_T[, f_rnt]), [B, 3D or 6D]."""
        parts = [self.cls_tokens.flatten(1)] + ([self.fused] if self.fused is not None else [])
        return torch.cat(parts, dim=1)


@dataclass
class ModalityExplanation:
    """What the model looked at in one modality, for visualisation."""

    intra: torch.Tensor | None  # [B, L] bool, kept by intra-modal selection
    inter: torch.Tensor | None  # [B, L] bool, chosen by the other modalities' queries
    final: torch.Tensor | None  # [B, L] bool, tokens SIM passed to the interaction
    reference_points: torch.Tensor | None  # [K, 2] LAM reference points (x, y) in [-1, 1]
    sampled_positions: torch.Tensor | None  # [B, K, 2] LAM sampling positions (x, y) in [-1, 1]
    intra_scores: torch.Tensor | None = None  # [B, L] own class token's attention (intra is its top-k1)
    inter_scores: torch.Tensor | None = None  # [B, L] attention received from the other modalities' queries
    displacement: torch.Tensor | None = None  # [B, 2] (x, y) px registration moved this modality by (RGB: 0)


@dataclass
class Explanation:
    """Per-modality explanation; coordinates are over the patch grid, align_corners=True."""

    grid_size: tuple[int, int]  # patch grid (h, w); L = h * w, tokens in row-major order
    features: torch.Tensor  # [B, F] retrieval features of the same pass (as extract_features)
    rgb: ModalityExplanation
    nir: ModalityExplanation
    tir: ModalityExplanation

    def __getitem__(self, modality: str) -> ModalityExplanation:
        return getattr(self, modality)


class SignalModel(nn.Module):
    """Signal (AAAI 2026) for RGB / NIR / TIR image triples. Build with :func:`build_model`."""

    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.backbone = CLIPVisionBackbone(cfg)
        self.sim = (SelectiveInteraction(d, cfg.k1, cfg.k2_effective, cfg.selection, cfg.interaction_heads,
                                         cfg.trainable_selection) if cfg.use_sim else None)
        self.gam = (GlobalAlignment(cfg.gam_tau, cfg.gam_label_smoothing, cfg.gam_standardise, cfg.gam_learn_tau,
                                    cfg.gam_identity_negatives) if cfg.use_gam else None)
        self.lam = (LocalAlignment(d, cfg.grid_size, cfg.lam_stride, cfg.offset_channels, cfg.lam_offset_range,
                                   cfg.reference_points, cfg.share_offsets, cfg.lam_detach,
                                   cfg.lam_offsets, cfg.lam_match_radius) if cfg.use_lam else None)
        self.registration = (Registration(cfg.registration, cfg.image_size, cfg.registration_window,
                                          cfg.registration_min_confidence) if cfg.registration != "none" else None)
        self.heads = (build_heads(cfg.head_layout or "concat", d, cfg.num_classes, cfg.use_sim)
                      if cfg.num_classes else None)
        self.inference_precision = "fp32"  # set_inference_precision(); training always runs in fp32
        self._shadow: ShadowWeights | None = None  # the encoder with bf16 matmuls, for inference

    @property
    def num_cameras(self) -> int:
        """Cameras with an embedding (valid ``cam_ids`` are ``0..num_cameras-1``); 0 = no camera embedding."""
        return self.backbone.num_cameras

    # --- encoding -------------------------------------------------------------------------------
    def encode(self, rgb: torch.Tensor, nir: torch.Tensor, tir: torch.Tensor,
               cam_ids: torch.Tensor | None = None, reduced_precision: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the shared encoder once on the three modalities stacked along the batch.

        Args:
            reduced_precision: run the encoder with the inference precision's weights (bf16 after
                ``set_inference_precision("bf16")``); the tokens come back in fp32 either way.

        Returns:
            cls [B, 3, D] and patches [B, 3, L, D].
        """
        b = rgb.shape[0]
        if not (rgb.shape == nir.shape == tir.shape) or rgb.dim() != 4:
            raise ValueError(
                f"rgb, nir and tir must be [B, 3, H, W] tensors of one shape, got "
                f"{tuple(rgb.shape)}, {tuple(nir.shape)}, {tuple(tir.shape)}."
            )
        if tuple(rgb.shape[-2:]) != self.cfg.image_size:
            raise ValueError(f"images are {tuple(rgb.shape[-2:])} but the model expects {self.cfg.image_size} "
                             "(H, W): resize them first.")
        cams = None if cam_ids is None else torch.as_tensor(cam_ids).reshape(-1).repeat(3)
        images = torch.cat([rgb, nir, tir], dim=0)
        if reduced_precision and self._shadow is not None:
            tokens = self._shadow(images, cams).float()  # [3B, 1 + L, D]; SIM runs in fp32
        else:
            tokens = self.backbone(images, cams)  # [3B, 1 + L, D]
        tokens = tokens.unflatten(0, (3, b)).transpose(0, 1)  # [B, 3, 1 + L, D]
        return tokens[:, :, 0], tokens[:, :, 1:]

    # --- forward ------------------------------------------------------------------------------
    def forward(self, rgb: torch.Tensor, nir: torch.Tensor, tir: torch.Tensor,
                cam_ids: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                align: bool | None = None) -> SignalOutput:
        """Full forward pass.

        Args:
            rgb, nir, tir: [B, 3, H, W] images.
            cam_ids: [B] camera indices, or None (mean camera embedding).
            targets: [B] identity labels; when given, the losses are computed.
            align: run GAM / LAM (default: in training mode only; they never change the feature).
        """
        nir, tir, displacement = self.register(rgb, nir, tir)
        cls, patches = self.encode(rgb, nir, tir, cam_ids)
        out = SignalOutput(cls_tokens=cls, fused=None, displacement=displacement)
        if self.sim is not None:
            out.fused, out.masks = self.sim(cls, patches)
        align = self.training if align is None else align
        if align and self.gam is not None:
            out.volume = self.gam.volumes(patches)
        if align and self.lam is not None:
            out.lam = self.lam(patches)
        if self.heads is not None and (self.training or targets is not None):
            out.logits = {name: head(self._head_input(name, out)) for name, head in self.heads.items()}
        if targets is not None:
            out.losses = self.losses(out, targets)
            out.loss = torch.stack(list(out.losses.values())).sum()
        return out

    def register(self, rgb: torch.Tensor, nir: torch.Tensor, tir: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """NIR and TIR warped onto RGB and the displacement [B, 2, 2] found (``cfg.registration``); the
        images unchanged and None without registration (the default, the authors' model)."""
        if self.registration is None:
            return nir, tir, None
        out = self.registration(rgb, nir, tir)
        return out.nir, out.tir, out.displacement

    def _head_input(self, name: str, out: SignalOutput) -> torch.Tensor:
        if name == "concat":
            return out.cls_tokens.flatten(1)
        if name == "fused":
            return out.fused
        return out.cls_tokens[:, MODALITIES.index(name)]

    def losses(self, out: SignalOutput, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted loss terms by name: id_<head>, triplet_<head>, gam, lam."""
        cfg = self.cfg
        if self.heads is None:
            raise ValueError("this model has no identity heads (num_classes=None): set num_classes to train it.")
        terms: dict[str, torch.Tensor] = {}
        for name in self.heads:
            terms[f"id_{name}"] = cfg.id_weight * label_smoothed_ce(out.logits[name], targets, cfg.label_smoothing)
            feat = self._head_input(name, out)
            terms[f"triplet_{name}"] = cfg.triplet_weight * batch_hard_triplet(feat, targets)
        if out.volume is not None:
            terms["gam"] = cfg.alpha * self.gam.loss(out.volume, targets)
        if out.lam is not None:
            terms["lam"] = cfg.beta * LocalAlignment.loss(out.lam)
        return terms

    # --- inference ----------------------------------------------------------------------------
    def set_inference_precision(self, precision: str = "auto") -> str:
        """Precision of the encoder in :meth:`extract_features` and :meth:`explain`.

        Args:
            precision: "fp32"; "bf16" (the encoder's Linear / attention matmuls in bf16; its residual
                stream, LayerNorms, embeddings and projections, and SIM's scores, softmaxes and
                top-k stay fp32; inputs may stay fp32); or "auto" (bf16 where the device runs it
                fast: a bf16 GPU, or a CPU whose bf16 matmuls beat fp32). The fp32 parameters are
                untouched: training, checkpoints and the state dict stay fp32. Call it again after
                moving the model to another device.

        Returns:
            The precision in use, "fp32" or "bf16".
        """
        device = next(self.parameters()).device
        self.inference_precision = resolve_precision(precision, device)
        dtype = PRECISION_DTYPES[self.inference_precision]
        if dtype == torch.float32:
            self._shadow = None
        elif self._shadow is None or self._shadow.dtype != dtype:  # the same precision again keeps its copy
            self._shadow = ShadowWeights(self.backbone, dtype)
        return self.inference_precision

    @torch.no_grad()
    def extract_features(self, rgb: torch.Tensor, nir: torch.Tensor, tir: torch.Tensor,
                         cam_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Retrieval features [B, 6D] (3072 for ViT-B/16): cat(cls_R, cls_N, cls_T, f_rnt) before the
        BNs, in eval mode, without GAM / LAM, fp32. cam_ids=None uses the mean camera embedding.
        The encoder runs in the precision chosen by :meth:`set_inference_precision` (fp32 by default)."""
        return self._inference(rgb, nir, tir, cam_ids, explain=False)[0]

    @torch.no_grad()
    def explain(self, rgb: torch.Tensor, nir: torch.Tensor, tir: torch.Tensor,
                cam_ids: torch.Tensor | None = None) -> Explanation:
        """Per modality: SIM's intra / inter / final token masks and the scores they select by, LAM's
        sampling points, plus the retrieval features of the same pass (identical to :meth:`extract_features`)."""
        return self._inference(rgb, nir, tir, cam_ids, explain=True)[1]

    def _inference(self, rgb, nir, tir, cam_ids, explain: bool) -> tuple[torch.Tensor, Explanation | None]:
        with _eval_mode(self):
            nir, tir, displacement = self.register(rgb, nir, tir)
            cls, patches = self.encode(rgb, nir, tir, cam_ids, reduced_precision=True)
            parts, masks = [cls.flatten(1)], None
            if self.sim is not None:
                fused, masks = self.sim(cls, patches)
                parts.append(fused)
            features = torch.cat(parts, dim=1).float()
            if not explain:
                return features, None
            lam = self.lam(patches) if self.lam is not None else None
            scores = self.sim.selection.score_maps(cls, patches) if self.sim is not None else None
        moved = None if displacement is None else torch.cat([torch.zeros_like(displacement[:, :1]), displacement], 1)
        per = {}
        for i, name in enumerate(MODALITIES):
            per[name] = ModalityExplanation(
                intra=None if masks is None else masks.intra[:, i],
                inter=None if masks is None else masks.inter[:, i],
                final=None if masks is None else masks.final[:, i],
                reference_points=None if lam is None else lam.reference.reshape(-1, 2).float(),
                sampled_positions=None if lam is None else self._positions(lam.positions[:, i], moved, i),
                intra_scores=None if scores is None else scores[0][:, i].float(),
                inter_scores=None if scores is None else scores[1][:, i].float(),
                displacement=None if moved is None else moved[:, i].float(),
            )
        return features, Explanation(grid_size=self.cfg.grid_size, features=features, **per)


    def _positions(self, positions: torch.Tensor, moved: torch.Tensor | None, i: int) -> torch.Tensor:
        """[B, K, 2] LAM's sampling positions of modality ``i`` in its own (unregistered) image: those on the
        registered image, moved by the registration's displacement (so offsets include it)."""
        positions = positions.flatten(1, 2).float()
        if moved is None:
            return positions
        return positions + displacement_on_grid(moved[:, i], self.cfg.grid_size, self.cfg.image_size)[:, None]


class _eval_mode:
    """Context manager: eval mode inside, the previous mode restored after.

    A model already in eval mode (``.training`` False, as after ``.eval()``) is left alone: walking
    every submodule twice per call cost the demo several milliseconds per search.
    """

    def __init__(self, module: nn.Module):
        self.module, self.was_training = module, module.training

    def __enter__(self):
        if self.was_training:
            self.module.eval()

    def __exit__(self, *exc):
        if self.was_training:
            self.module.train(True)


def build_model(cfg: SignalConfig) -> SignalModel:
    """Build a Signal model; loads CLIP weights when ``cfg.pretrained`` is set."""
    model = SignalModel(cfg)
    if cfg.pretrained:
        from .clip_weights import load_clip_weights

        load_clip_weights(model.backbone, cfg.pretrained, cfg.trust_torchscript)
    return model
