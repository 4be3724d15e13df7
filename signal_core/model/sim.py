"""SIM, the Selective Interaction Module: intra- and inter-modal token selection, then one
cross-attention layer between the three class tokens and the selected patch tokens.

Modalities are stacked in the order (RGB, NIR, TIR) on dim 1 throughout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from open_clip.transformer import LayerNormFp32
from torch import nn

# For query modality m, the other two modalities in ascending order (RGB=0, NIR=1, TIR=2).
_OTHERS = torch.tensor([[1, 2], [0, 2], [0, 1]])


@dataclass
class SelectionMasks:
    """Boolean token masks, each [B, 3, L] (modality order RGB, NIR, TIR)."""

    intra: torch.Tensor  # top-k1 of each modality's own class-token attention
    inter: torch.Tensor  # chosen in this modality by the other two modalities' queries (top-k2)
    final: torch.Tensor  # intra | inter ("union") or intra & inter ("intersection")


def topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the top-``k`` entries along the last dim of ``scores``."""
    idx = scores.topk(min(k, scores.shape[-1]), dim=-1).indices
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True)


class TokenSelection(nn.Module):
    """Intra- and inter-modal top-k selection (no per-sample loops).

    In the authors' code the masks come from hard top-k indices, so ``q_proj`` / ``k_proj`` (their
    ``W_q`` / ``W_k``) never receive gradients and stay at their random initialisation, and
    ``v_proj`` (``W_v``) is never used; all three are kept so their checkpoints load exactly, and
    are frozen unless ``trainable=True`` (the paper's reading: scores reach the loss through a
    straight-through estimator, the forward values unchanged).
    """

    def __init__(self, dim: int, k1: int, k2: int, selection: str = "union", trainable: bool = False):
        super().__init__()
        self.dim, self.k1, self.k2 = dim, k1, k2
        self.selection = selection
        self.trainable = trainable
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)  # unused, as in the authors' code (checkpoint compatibility)
        self.v_proj.requires_grad_(False)
        if not trainable:
            self.q_proj.requires_grad_(False)
            self.k_proj.requires_grad_(False)

    def intra_scores(self, cls: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """softmax(cls_m . patches_m^T / sqrt(D)) per modality: [B, 3, D], [B, 3, L, D] -> [B, 3, L]."""
        logits = torch.einsum("bmd,bmld->bml", cls, patches) / math.sqrt(self.dim)
        return logits.softmax(dim=-1)

    def inter_scores(self, cls: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Each modality's query over the OTHER two modalities' keys: [B, 3 (query), 2, L].

        The softmax runs over all 3L keys (own modality included) before the own columns are
        dropped, as in the authors' code.
        """
        b, m, l, d = patches.shape
        q = self.q_proj(cls)  # [B, 3, D]
        k = self.k_proj(patches.reshape(b, m * l, d))  # [B, 3L, D]
        scores = (q @ k.transpose(1, 2) / math.sqrt(self.dim)).softmax(dim=-1)  # [B, 3, 3L]
        scores = scores.reshape(b, m, m, l)  # [B, query, key modality, L]
        others = _OTHERS.to(scores.device)
        return scores[:, torch.arange(3, device=scores.device)[:, None], others]  # [B, 3, 2, L]

    def score_maps(self, cls: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The scores the masks are the top-k of, per patch of each modality (for explanations).

        Returns:
            intra [B, 3, L]: each modality's class-token attention over its own patches (sums to 1);
            inter [B, 3, L]: the attention each patch receives from the other two modalities' queries
            (each query's softmax runs over all 3L keys, as in :meth:`inter_scores`).
        """
        b, m, l, _ = patches.shape
        inter_s = self.inter_scores(cls, patches)  # [B, query, 2, L]
        received = torch.zeros(b, m, m, l, dtype=inter_s.dtype, device=patches.device)  # [B, query, target, L]
        received[:, torch.arange(3, device=patches.device)[:, None], _OTHERS.to(patches.device)] = inter_s
        return self.intra_scores(cls, patches), received.sum(dim=1)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor) -> tuple[SelectionMasks, torch.Tensor]:
        """Select tokens.

        Args:
            cls: [B, 3, D] class tokens.
            patches: [B, 3, L, D] patch tokens.

        Returns:
            The masks, and the [B, 3, L, 1] multiplier applied to the patch tokens (the final mask
            as numbers; with ``trainable`` it carries the straight-through score gradients).
        """
        b, m, l, _ = patches.shape
        intra_s = self.intra_scores(cls, patches)  # [B, 3, L]
        intra = topk_mask(intra_s, self.k1)

        inter_s = self.inter_scores(cls, patches)  # [B, 3, 2, L]
        chosen = topk_mask(inter_s.reshape(b, m, 2 * l), self.k2).reshape(b, m, 2, l)
        received = torch.zeros(b, m, m, l, dtype=torch.bool, device=patches.device)  # [B, query, target, L]
        received[:, torch.arange(3, device=patches.device)[:, None], _OTHERS.to(patches.device)] = chosen
        inter = received.any(dim=1)  # [B, 3, L]: union of what the other two queries chose

        final = intra | inter if self.selection == "union" else intra & inter
        weight = final.to(patches.dtype)
        if self.trainable:
            soft = torch.zeros(b, m, m, l, dtype=inter_s.dtype, device=patches.device)
            soft[:, torch.arange(3, device=patches.device)[:, None], _OTHERS.to(patches.device)] = inter_s
            soft = intra_s + soft.sum(dim=1)  # [B, 3, L] attention each token receives
            weight = weight + (soft - soft.detach()).to(weight.dtype)
        return SelectionMasks(intra=intra, inter=inter, final=final), weight.unsqueeze(-1)


class ModalInteraction(nn.Module):
    """One post-LN cross-attention layer: the three class tokens attend to the selected tokens.

    x = LN1(q + MHA(q, kv, kv)); out = LN2(x + FFN(x)), FFN = Linear(D, 2D) -> GELU -> Linear(2D, D).
    """

    def __init__(self, dim: int, num_heads: int = 8):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm1 = LayerNormFp32(dim)
        self.norm2 = LayerNormFp32(dim)

    def forward(self, cls: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """[B, 3, D] queries, [B, N, D] keys/values -> [B, 3, D] fused tokens."""
        attn = self.attn(cls, tokens, tokens, need_weights=False)[0]
        x = self.norm1(cls + attn)
        return self.norm2(x + self.ffn(x))


class SelectiveInteraction(nn.Module):
    """Token selection followed by modal interaction; returns f_rnt [B, 3D] and the masks."""

    def __init__(self, dim: int, k1: int, k2: int, selection: str = "union", num_heads: int = 8,
                 trainable_selection: bool = False):
        super().__init__()
        self.selection = TokenSelection(dim, k1, k2, selection, trainable_selection)
        self.interaction = ModalInteraction(dim, num_heads)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, SelectionMasks]:
        """[B, 3, D] class tokens, [B, 3, L, D] patches -> (f_rnt [B, 3D], masks)."""
        masks, weight = self.selection(cls, patches)
        selected = (patches * weight).flatten(1, 2)  # [B, 3L, D]; unselected tokens become zeros
        fused = self.interaction(cls, selected)  # [B, 3, D]
        return fused.flatten(1), masks
