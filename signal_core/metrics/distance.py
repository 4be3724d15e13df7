"""Feature distances for ranking."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def pairwise_distance(query_feats: Any, gallery_feats: Any, normalize: bool = True) -> np.ndarray:
    """Squared Euclidean distances ``[Q, G]`` between (optionally L2-normalised) features.

    Computed with torch on the features' device as ``|q|^2 + |g|^2 - 2 q.g`` (the formula
    of the authors' ``euclidean_distance``), returned as a CPU **numpy** array: float32,
    or float64 when both inputs are float64.  Half/bfloat16 features are computed in
    float32.  Values are not clamped, so tiny negative values (rounding) are possible.
    """
    q = query_feats if isinstance(query_feats, torch.Tensor) else torch.as_tensor(np.asarray(query_feats))
    g = gallery_feats if isinstance(gallery_feats, torch.Tensor) else torch.as_tensor(np.asarray(gallery_feats))
    if q.ndim != 2 or g.ndim != 2:
        raise ValueError(f"features must be 2-D [N, D], got {tuple(q.shape)} and {tuple(g.shape)}")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"feature dims differ: query {q.shape[1]} vs gallery {g.shape[1]}")
    if q.device != g.device:
        g = g.to(q.device)
    dtype = torch.float64 if (q.dtype == torch.float64 and g.dtype == torch.float64) else torch.float32
    with torch.no_grad():
        q = q.detach().to(dtype)
        g = g.detach().to(dtype)
        if normalize:
            q = torch.nn.functional.normalize(q, p=2, dim=1)
            g = torch.nn.functional.normalize(g, p=2, dim=1)
        dist = q.pow(2).sum(dim=1, keepdim=True) + g.pow(2).sum(dim=1).unsqueeze(0)  # [Q, G]
        dist.addmm_(q, g.t(), beta=1, alpha=-2)
    return dist.cpu().numpy()
