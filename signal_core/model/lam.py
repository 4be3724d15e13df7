"""LAM, the Local Alignment Module: per-modality deformable sampling of the patch-token map on a
coarse grid, aligned across modalities with an MSE loss (after DAT, Xia et al. 2022).

Coordinates are normalised to [-1, 1] over the patch grid with ``align_corners=True`` semantics:
-1 is the centre of the first patch, +1 the centre of the last.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import LAM_OFFSETS


@dataclass
class LAMOutput:
    """Deformable sampling results for the three modalities (order RGB, NIR, TIR)."""

    sampled: torch.Tensor  # [B, 3, D, Hk, Wk] features sampled at `positions`
    reference: torch.Tensor  # [Hk, Wk, 2] reference points (x, y) as sampled with zero offset
    positions: torch.Tensor  # [B, 3, Hk, Wk, 2] sampling positions (x, y) after the offsets


def reference_points(hk: int, wk: int, mode: str = "official", device=None, dtype=None,
                     grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Reference grid [Hk, Wk, 2] in (y, x) order, before clamping.

    "official": linspace(0.5, n - 0.5, n) / (n - 1) * 2 - 1, as the authors' code (it reaches past
    +1 and is clamped when sampling). "paper": linspace(-1, 1, n), the grid the paper describes.
    "centred": the centre of each stride x stride window of the (h, w) patch grid,
    ((i + 0.5) * s - 0.5) / (h - 1) * 2 - 1 with s = h / n (needs ``grid``).
    """
    if mode not in ("official", "paper", "centred"):
        raise ValueError(f"reference mode must be 'official', 'paper' or 'centred', got {mode!r}.")
    if mode == "centred" and grid is None:
        raise ValueError("the centred reference grid needs the patch grid (h, w).")

    def axis(n: int, size: int | None) -> torch.Tensor:
        if mode == "paper":
            return torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype)
        if mode == "centred":
            step = size / n
            return ((torch.arange(n, device=device, dtype=dtype) + 0.5) * step - 0.5) / max(size - 1, 1) * 2 - 1
        return torch.linspace(0.5, n - 0.5, n, device=device, dtype=dtype) / (n - 1.0) * 2.0 - 1.0

    h, w = grid if grid is not None else (None, None)
    ref_y, ref_x = torch.meshgrid(axis(hk, h), axis(wk, w), indexing="ij")
    return torch.stack([ref_y, ref_x], dim=-1)


class DeformableSampler(nn.Module):
    """Offsets from a small conv net on proj_q(x); bilinear sampling of the ORIGINAL map x.

    offset net: 1x1 conv -> GELU -> depthwise s x s conv, stride s -> GELU -> 1x1 conv to
    ``offset_channels`` (no bias). One channel (authors' code) is broadcast to (dy, dx), so every
    offset lies on one fixed diagonal; two channels move y and x independently.
    """

    def __init__(self, dim: int, stride: int = 4, offset_channels: int = 1, offset_range: float = 2.0,
                 reference_mode: str = "official"):
        super().__init__()
        self.offset_range = offset_range
        self.reference_mode = reference_mode
        self.proj_q = nn.Conv2d(dim, dim, kernel_size=1)
        self.offset_net = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=1),
            nn.GELU(),
            nn.Conv2d(dim, dim, kernel_size=stride, stride=stride, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, offset_channels, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, D, h, w] -> sampled [B, D, Hk, Wk], reference [Hk, Wk, 2] (y, x), positions [B, Hk, Wk, 2] (y, x)."""
        offset = self.offset_net(self.proj_q(x))  # [B, 1 or 2, Hk, Wk]
        hk, wk = offset.shape[-2:]
        scale = torch.tensor([1.0 / (hk - 1.0), 1.0 / (wk - 1.0)], device=x.device, dtype=offset.dtype)
        offset = offset.tanh() * scale.view(1, 2, 1, 1) * self.offset_range  # [B, 2, Hk, Wk] (dy, dx)
        ref = reference_points(hk, wk, self.reference_mode, x.device, offset.dtype, grid=tuple(x.shape[-2:]))
        pos = (offset.permute(0, 2, 3, 1) + ref).clamp(-1.0, 1.0)  # [B, Hk, Wk, 2] (y, x)
        sampled = F.grid_sample(x, pos.flip(-1).to(x.dtype), mode="bilinear", align_corners=True)
        return sampled, ref, pos


class MatchedSampler(nn.Module):
    """NIR / TIR positions found by matching the modality against RGB (``offsets="matched"``; not the paper's).

    A local cost volume, as optical-flow networks build one: both maps go through one shared 1x1
    projection (the identity at initialisation) and are L2-normalised per token; for every displacement
    of up to ``radius`` tokens per axis, the cosine of each RGB token with the modality's displaced
    token, averaged over each stride x stride window of the LAM grid; a softmax over the displacements
    (learnable temperature) and its expectation give a sub-token displacement per grid point. The
    modality samples where RGB samples, moved by that displacement: a shift that changes per camera
    rig or per image can be followed, which an offset net that sees only its own modality cannot do.
    """

    def __init__(self, dim: int, stride: int = 4, radius: int = 2, tau: float = 0.1):
        super().__init__()
        self.stride = stride
        self.radius = radius
        self.proj = nn.Conv2d(dim, dim, kernel_size=1)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(dim).view(dim, dim, 1, 1))
            self.proj.bias.zero_()
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau)))
        self.steps = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
        self.register_buffer("displacements", torch.tensor(self.steps, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor, rgb: torch.Tensor, rgb_positions: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x, rgb [B, D, h, w]; RGB's positions [B, Hk, Wk, 2] (y, x) -> sampled [B, D, Hk, Wk], positions."""
        h, w = x.shape[-2:]
        r = self.radius
        query = F.pad(F.normalize(self.proj(x), dim=1), (r, r, r, r))  # zero outside the map: cosine 0
        key = F.normalize(self.proj(rgb), dim=1)
        costs = torch.stack([(key * query[:, :, r + dy:r + dy + h, r + dx:r + dx + w]).sum(1)
                             for dy, dx in self.steps], dim=1)  # [B, n, h, w]
        weights = (F.avg_pool2d(costs, self.stride) / self.log_tau.exp()).softmax(dim=1)  # [B, n, Hk, Wk]
        tokens = torch.einsum("bnyx,nc->byxc", weights, self.displacements.to(weights.dtype))  # (dy, dx)
        scale = torch.tensor([2.0 / max(h - 1, 1), 2.0 / max(w - 1, 1)], device=x.device, dtype=tokens.dtype)
        pos = (rgb_positions + tokens * scale).clamp(-1.0, 1.0)
        sampled = F.grid_sample(x, pos.flip(-1).to(x.dtype), mode="bilinear", align_corners=True)
        return sampled, pos


class LocalAlignment(nn.Module):
    """One deformable sampler per modality (or one shared, ``share_offsets=True``).

    ``detach=True`` samples detached patch tokens: without it the MSE is lowest when the encoder
    makes every token the same (feature collapse, docs/alignment.md) and the offsets learn nothing.
    ``offsets="matched"``: RGB keeps its deformable sampler; NIR and TIR sample where RGB does, moved
    by the displacement a :class:`MatchedSampler` finds against RGB (``match_radius`` tokens at most).
    """

    def __init__(self, dim: int, grid: tuple[int, int], stride: int = 4, offset_channels: int = 1,
                 offset_range: float = 2.0, reference_mode: str = "official", share_offsets: bool = False,
                 detach: bool = False, offsets: str = "own", match_radius: int = 2):
        super().__init__()
        if offsets not in LAM_OFFSETS:
            raise ValueError(f"LAM offsets must be one of {LAM_OFFSETS}, got {offsets!r}.")
        if offsets == "matched" and share_offsets:
            raise ValueError("matched LAM offsets need one sampler per modality: set share_offsets=False.")
        self.grid = grid
        self.detach = detach  # sample detached tokens: the MSE moves the offsets, never the encoder
        self.offsets = offsets
        n = 1 if share_offsets or offsets == "matched" else 3
        samplers = [DeformableSampler(dim, stride, offset_channels, offset_range, reference_mode) for _ in range(n)]
        if offsets == "matched":
            samplers += [MatchedSampler(dim, stride, match_radius) for _ in range(2)]
        self.samplers = nn.ModuleList(samplers)

    def forward(self, patches: torch.Tensor) -> LAMOutput:
        """[B, 3, L, D] patch tokens -> :class:`LAMOutput`."""
        b, m, l, d = patches.shape
        if self.detach:
            patches = patches.detach()
        maps = patches.reshape(b, m, *self.grid, d).permute(0, 1, 4, 2, 3)  # [B, 3, D, h, w]
        if self.offsets == "matched":
            rgb, ref, rgb_pos = self.samplers[0](maps[:, 0])
            outs = [sampler(maps[:, i], maps[:, 0], rgb_pos) for i, sampler in enumerate(self.samplers[1:], 1)]
            sampled = torch.stack([rgb] + [o[0] for o in outs], dim=1)
            pos = torch.stack([rgb_pos] + [o[1] for o in outs], dim=1)
        elif len(self.samplers) == 1:  # shared weights: one call over the three modalities
            sampled, ref, pos = self.samplers[0](maps.flatten(0, 1))
            sampled = sampled.unflatten(0, (b, m))
            pos = pos.unflatten(0, (b, m))
        else:
            outs = [sampler(maps[:, i]) for i, sampler in enumerate(self.samplers)]
            sampled = torch.stack([o[0] for o in outs], dim=1)
            ref = outs[0][1]
            pos = torch.stack([o[2] for o in outs], dim=1)
        return LAMOutput(sampled=sampled, reference=ref.clamp(-1, 1).flip(-1), positions=pos.flip(-1))

    @staticmethod
    def loss(out: LAMOutput) -> torch.Tensor:
        """(MSE(N, R) + MSE(T, R) + MSE(T, N)) / 3 over the sampled maps."""
        r, n, t = out.sampled.float().unbind(dim=1)
        return (F.mse_loss(n, r) + F.mse_loss(t, r) + F.mse_loss(t, n)) / 3
