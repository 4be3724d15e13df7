"""BNNeck classification heads: BatchNorm1d (frozen bias) then a bias-free linear classifier."""
from __future__ import annotations

import torch
from torch import nn

from ..modalities import MODALITIES


class BNNeckHead(nn.Module):
    """BN (weight 1, bias 0 and frozen) -> Linear(dim, num_classes, bias=False), std 0.001."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """[B, dim] feature (before BN) -> [B, num_classes] logits."""
        return self.classifier(self.bn(feat))


def build_heads(layout: str, dim: int, num_classes: int, use_sim: bool) -> nn.ModuleDict:
    """The identity heads of a Signal model, keyed by the feature they classify.

    Args:
        layout: "concat" (one head on cat of the three class tokens; the authors' DIRECT=1) or
            "per_modality" (one head per class token; DIRECT=0).
        dim: embedding size D of one token.
        num_classes: training identities.
        use_sim: add the "fused" head on f_rnt (3D).
    """
    heads = nn.ModuleDict()
    if layout == "concat":
        heads["concat"] = BNNeckHead(3 * dim, num_classes)
    else:
        for name in MODALITIES:
            heads[name] = BNNeckHead(dim, num_classes)
    if use_sim:
        heads["fused"] = BNNeckHead(3 * dim, num_classes)
    return heads
