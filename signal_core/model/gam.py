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
    authors' code (their ``AlignM.contra_temp``). The defaults are the authors' formulation, whose
    loss sits at chance (docs/alignment.md); three opt-in switches make it learnable:

    Args:
        tau: initial temperature.
        label_smoothing: of both cross-entropies.
        standardise: standardise each mean-patch feature over the batch (zero mean, unit variance
            per channel) before the L2 normalisation; removes the direction all samples share.
        learn_tau: False keeps ``tau`` fixed (still stored, so checkpoints keep their keys).
        identity_negatives: False (authors) counts other samples of the same identity as
            negatives; True leaves them out of each softmax (needs the targets in :meth:`loss`).
    """

    def __init__(self, tau: float = 0.07, label_smoothing: float = 0.1, standardise: bool = False,
                 learn_tau: bool = True, identity_negatives: bool = False):
        super().__init__()
        self.tau = nn.Parameter(torch.tensor(float(tau)), requires_grad=learn_tau)
        self.label_smoothing = label_smoothing
        self.standardise = standardise
        self.identity_negatives = identity_negatives

    def features(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, 3, L, D] patch tokens -> [B, 3, D] unit features (mean patch token per modality)."""
        feats = patches.mean(dim=2)  # [B, 3, D]
        if self.standardise and feats.shape[0] > 1:
            feats = feats.float()
            feats = (feats - feats.mean(dim=0)) / (feats.var(dim=0, unbiased=False) + 1e-5).sqrt()
        return F.normalize(feats, dim=-1)

    def volumes(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, 3, L, D] patch tokens -> [B, B] volumes V[i, j] = Vol(RGB_i, NIR_j, TIR_j)."""
        feats = self.features(patches)
        return gram_volume(feats[:, 0], feats[:, 1], feats[:, 2])

    def loss(self, volume: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """(CE(-V / tau) + CE(-V^T / tau)) / 2 with targets arange(B) and label smoothing.

        Args:
            volume: [B, B] volumes.
            targets: [B] identities; used only with ``identity_negatives`` (then required).
        """
        logits = -volume / self.tau
        if not self.identity_negatives:
            targets = torch.arange(volume.shape[0], device=volume.device)
            ls = self.label_smoothing
            return (F.cross_entropy(logits, targets, label_smoothing=ls)
                    + F.cross_entropy(logits.T, targets, label_smoothing=ls)) / 2
        if targets is None:
            raise ValueError("GAM with identity_negatives needs the identity targets.")
        same = targets[:, None] == targets[None, :]
        excluded = same & ~torch.eye(len(targets), dtype=torch.bool, device=volume.device)  # [B, B]
        return (_masked_smoothed_ce(logits, excluded, self.label_smoothing)
                + _masked_smoothed_ce(logits.T, excluded.T, self.label_smoothing)) / 2


def _masked_smoothed_ce(logits: torch.Tensor, excluded: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Label-smoothed CE with diagonal targets over the columns not ``excluded`` (as F.cross_entropy
    when nothing is excluded: the smoothing mass spreads over the remaining columns)."""
    logp = logits.masked_fill(excluded, float("-inf")).log_softmax(dim=-1)  # [B, B]
    nll = -logp.diagonal()
    smooth = -logp.masked_fill(excluded, 0.0).sum(dim=-1) / (~excluded).sum(dim=-1)
    return ((1 - smoothing) * nll + smoothing * smooth).mean()
