"""The shared CLIP ViT visual encoder, built from open_clip's modules.

It differs from open_clip's own ``VisionTransformer.forward`` in the two ways the authors' code
does: a camera (SIE) embedding is added to the class token only, and ``ln_post`` + ``proj`` are
applied to every token, so patch tokens come out in the 512-d joint space as well.
"""
from __future__ import annotations

import torch
from open_clip.transformer import LayerNormFp32, QuickGELU, VisionTransformer
from torch import nn

from ..config import SignalConfig
from ..data.records import UNKNOWN


def camera_embedding(table: torch.Tensor, cam_ids: torch.Tensor) -> torch.Tensor:
    """[C, width] camera embeddings, [N] ids -> [N, width]: row i is ``table[cam_ids[i]]``, or the mean
    embedding where the id is negative (:data:`~signal_core.data.UNKNOWN`). No checks: graph exporters
    trace it as it is."""
    known = table[cam_ids.clamp(min=0)]
    return torch.where((cam_ids >= 0).unsqueeze(1), known, table.mean(0, keepdim=True).expand_as(known))


class CLIPVisionBackbone(nn.Module):
    """CLIP ViT (QuickGELU) at any input size, with an optional per-camera class-token embedding.

    Parameter names under ``visual.`` are those of OpenAI CLIP / open_clip ``visual.*``.
    """

    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self.visual = VisionTransformer(
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            width=cfg.width,
            layers=cfg.layers,
            heads=cfg.heads,
            mlp_ratio=4.0,
            output_dim=cfg.embed_dim,
            act_layer=QuickGELU,
            norm_layer=LayerNormFp32,  # LayerNorm in fp32 whatever the weight dtype
        )
        self.camera_embed_scale = cfg.camera_embed_scale
        if cfg.camera_embed and cfg.num_cameras:
            self.camera_embed = nn.Parameter(torch.zeros(cfg.num_cameras, cfg.width))  # [C, width]
            nn.init.trunc_normal_(self.camera_embed, std=0.02)
        else:
            self.register_parameter("camera_embed", None)

    @property
    def num_cameras(self) -> int:
        return 0 if self.camera_embed is None else self.camera_embed.shape[0]

    def _class_token(self, batch: int, cam_ids: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        cls = self.visual.class_embedding.to(dtype).expand(batch, -1)  # [N, width]
        if self.camera_embed is None:
            return cls
        if cam_ids is None:  # camera unknown: the mean camera embedding
            cam = self.camera_embed.mean(0, keepdim=True).expand(batch, -1)
        else:
            cam_ids = cam_ids.to(self.camera_embed.device).long()
            if cam_ids.numel() and (cam_ids.min() < UNKNOWN or cam_ids.max() >= self.num_cameras):
                raise ValueError(
                    f"camera ids must be in [0, {self.num_cameras - 1}] for this model, or {UNKNOWN} (unknown), got "
                    f"{cam_ids.min().item()}..{cam_ids.max().item()}; pass cam_ids=None if all are unknown."
                )
            cam = camera_embedding(self.camera_embed, cam_ids)
        return cls + self.camera_embed_scale * cam.to(dtype)

    def forward(self, images: torch.Tensor, cam_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Encode images into class + patch tokens.

        Args:
            images: [N, 3, H, W] normalised images.
            cam_ids: [N] camera indices (-1: unknown, the mean camera embedding), or None (all unknown).

        Returns:
            [N, 1 + L, D] tokens after ln_post and proj; index 0 is the class token.
        """
        v = self.visual
        x = v.conv1(images.to(v.conv1.weight.dtype))  # [N, width, h, w]
        x = x.flatten(2).transpose(1, 2)  # [N, L, width]
        cls = self._class_token(x.shape[0], cam_ids, x.dtype).unsqueeze(1)  # [N, 1, width]
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)  # [N, 1 + L, width]
        x = v.patch_dropout(x)
        x = v.ln_pre(x)
        x = v.transformer(x)
        x = v.ln_post(x)
        return x @ v.proj  # [N, 1 + L, D]
