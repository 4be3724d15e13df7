"""Random erasing as in the authors' training pipeline (timm-style, applied after normalisation).

The authors copy timm's ``RandomErasing`` and use ``probability=RE_PROB (0.5), mode='pixel',
max_count=1, device='cpu'`` with defaults ``min_area=0.02, max_area=1/3, min_aspect=0.3``
(aspect ratio log-uniform in [0.3, 1/0.3]). One box, 10 placement attempts, filled with
per-pixel standard-normal noise. We draw from torch's RNG instead of Python's ``random``
(same distributions; DataLoader workers seed both).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

_MODES = ("const", "rand", "pixel")


class RandomErasing:
    """Erase one random rectangle of a normalised ``[C, H, W]`` image (or a shared one in a group).

    Args:
        probability: chance that a box is erased at all.
        min_area: minimum erased fraction of the image area.
        max_area: maximum erased fraction of the image area.
        min_aspect: minimum h / w of the box; the maximum is ``1 / min_aspect``.
        mode: fill: ``"pixel"`` per-pixel N(0, 1) noise (authors), ``"rand"`` one N(0, 1) colour per
            channel, ``"const"`` zeros.
        attempts: box placement tries before giving up (box must be strictly smaller than the image).
    """

    def __init__(self, probability: float = 0.5, min_area: float = 0.02, max_area: float = 1 / 3,
                 min_aspect: float = 0.3, mode: str = "pixel", attempts: int = 10) -> None:
        if mode not in _MODES:
            raise ValueError(f"RandomErasing mode must be one of {_MODES}, got {mode!r}")
        if not 0.0 <= probability <= 1.0 or not 0.0 < min_area <= max_area or min_aspect <= 0:
            raise ValueError(f"invalid RandomErasing settings: probability={probability} (need 0..1), "
                             f"area=({min_area}, {max_area}) (need 0 < min <= max), min_aspect={min_aspect} (> 0)")
        self.probability = probability
        self.area = (min_area, max_area)
        self.log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
        self.mode = mode
        self.attempts = attempts

    def sample_box(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """Draw (top, left, h, w) of the box, or None when no erasing happens this time."""
        if torch.rand(()).item() >= self.probability:  # authors: skip if random() > p
            return None
        for _ in range(self.attempts):
            u_area, u_aspect = torch.rand(2).tolist()
            target = (self.area[0] + u_area * (self.area[1] - self.area[0])) * height * width
            aspect = math.exp(self.log_aspect[0] + u_aspect * (self.log_aspect[1] - self.log_aspect[0]))
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if w < width and h < height:
                top = int(torch.randint(0, height - h + 1, ()).item())
                left = int(torch.randint(0, width - w + 1, ()).item())
                return top, left, h, w
        return None

    def _fill(self, channels: int, h: int, w: int, dtype: torch.dtype) -> Tensor:
        if self.mode == "pixel":
            return torch.empty(channels, h, w, dtype=dtype).normal_()  # [C, h, w]
        if self.mode == "rand":
            return torch.empty(channels, 1, 1, dtype=dtype).normal_()  # [C, 1, 1]
        return torch.zeros(channels, 1, 1, dtype=dtype)

    def __call__(self, images: Tensor | Sequence[Tensor]) -> Tensor | tuple[Tensor, ...]:
        """Erase a box.

        Args:
            images: one ``[C, H, W]`` tensor, or a sequence of same-sized ones that then share ONE
                draw (box and fill values), e.g. the three modalities in paired mode.

        Returns:
            The erased tensor(s) (new tensors; the inputs are not modified).
        """
        single = isinstance(images, Tensor)
        group = (images,) if single else tuple(images)
        c, height, width = group[0].shape[-3:]
        if any(t.shape != group[0].shape for t in group):
            raise ValueError(f"shared random erasing needs same-sized images, got {[tuple(t.shape) for t in group]}")
        box = self.sample_box(height, width)
        if box is not None:
            top, left, h, w = box
            fill = self._fill(c, h, w, group[0].dtype)
            group = tuple(t.clone() for t in group)
            for t in group:
                t[:, top:top + h, left:left + w] = fill
        return group[0] if single else group

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.probability}, area={self.area}, mode={self.mode})"
