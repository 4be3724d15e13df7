"""GAM, the Global Alignment Module: the volume of the parallelotope spanned by the three modality
features (Gram determinant) as a contrastive similarity, after GRAM (Cicchetti et al., ICLR 2025).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gram_volume(anchor: torch.Tensor, second: torch.Tensor, third: torch.Tensor) -> torch.Tensor:
    """Pairwise volumes sqrt(|det G|) of (anchor_i, second_j, third_j), computed in fp32.

    Note the asymmetry of the authors' code, kept here: row i takes the anchor of sample i and
    the other two vectors of sample j.

    Args:
        anchor: [B1, D] (RGB).
        second: [B2, D] (NIR).
        third: [B2, D] (TIR).

    Returns:
        [B1, B2] volumes; for unit vectors 1 when orthonormal, 0 when linearly dependent.
    """
    a, b, c = anchor.float(), second.float(), third.float()
    n1, n2 = a.shape[0], b.shape[0]
    aa = (a * a).sum(-1)[:, None].expand(n1, n2)
    ab, ac = a @ b.T, a @ c.T  # [B1, B2]
    bb = (b * b).sum(-1)[None].expand(n1, n2)
    bc = (b * c).sum(-1)[None].expand(n1, n2)
    cc = (c * c).sum(-1)[None].expand(n1, n2)
    gram = torch.stack([
        torch.stack([aa, ab, ac], dim=-1),
        torch.stack([ab, bb, bc], dim=-1),
        torch.stack([ac, bc, cc], dim=-1),
    ], dim=-2)  # [B1, B2, 3, 3]
    return torch.linalg.det(gram).abs().sqrt()


class GlobalAlignment(nn.Module):
    """Mean patch token per modality, L2-normalised, aligned by the Gram-volume contrastive loss.

    The temperature ``tau`` is a learnable plain divisor (no log / exp, no clamp), as in the
    authors' code (their ``AlignM.contra_temp``).
    """

    def __init__(self, tau: float = 0.07, label_smoothing: float = 0.1):
        super().__init__()
        self.tau = nn.Parameter(torch.tensor(float(tau)))
        self.label_smoothing = label_smoothing

    def volumes(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, 3, L, D] patch tokens -> [B, B] volumes V[i, j] = Vol(RGB_i, NIR_j, TIR_j)."""
        feats = F.normalize(patches.mean(dim=2), dim=-1)  # [B, 3, D]
        return gram_volume(feats[:, 0], feats[:, 1], feats[:, 2])

    def loss(self, volume: torch.Tensor) -> torch.Tensor:
        """(CE(-V / tau) + CE(-V^T / tau)) / 2 with targets arange(B) and label smoothing."""
        targets = torch.arange(volume.shape[0], device=volume.device)
        logits = -volume / self.tau
        ls = self.label_smoothing
        return (F.cross_entropy(logits, targets, label_smoothing=ls)
                + F.cross_entropy(logits.T, targets, label_smoothing=ls)) / 2
