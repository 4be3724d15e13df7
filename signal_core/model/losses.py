"""Identity losses: label-smoothed cross-entropy and soft-margin batch-hard triplet."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def label_smoothed_ce(logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1) -> torch.Tensor:
    """Cross-entropy against (1 - eps) * one_hot + eps / C (Szegedy et al. 2016)."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=epsilon)


def euclidean_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[M, D], [N, D] -> [M, N] Euclidean distances (clamped at 1e-12 before the sqrt)."""
    x, y = x.float(), y.float()
    dist = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None] - 2 * x @ y.T
    return dist.clamp(min=1e-12).sqrt()


def batch_hard_triplet(feats: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft-margin triplet loss with batch-hard mining (Hermans et al. 2017).

    loss = mean(log(1 + exp(-(d_an - d_ap)))), i.e. SoftMarginLoss(d_an - d_ap, 1), with d_ap the
    distance to the hardest positive and d_an to the hardest negative of each anchor, on the
    unnormalised features (Euclidean), as the authors' code (no margin).

    Args:
        feats: [B, D] features (before BN).
        targets: [B] identity labels; each anchor needs a positive and a negative in the batch.
    """
    dist = euclidean_distance(feats, feats)  # [B, B]
    same = targets[:, None] == targets[None, :]
    if not bool((~same).any(dim=1).all()):
        raise ValueError("batch_hard_triplet needs at least two identities in the batch (use a P x K sampler).")
    d_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    return F.softplus(-(d_an - d_ap)).mean()
