"""Image-level registration of NIR / TIR to RGB: estimate each triple's translation, warp before the encoder.

Real RGB / NIR / TIR rigs are misaligned by a few pixels per camera, and that shift is visible only in
the images' full-resolution edges, not in the tokens LAM samples (docs/alignment.md). This module finds
the displacement ``t`` (x, y) in pixels with ``modality(p + t) = RGB(p)``, the convention of
``synthetic.json``'s ``nir_shift`` / ``tir_shift``, by a correlation over a bounded search window:

* ``feature``: ``orientation`` (the doubled-angle gradient orientation, as the complex form of the colour
  structure tensor ``sum_c (gx + i gy)^2`` over its trace plus a noise floor: the correlation of two of
  them sums ``|g||g'| cos(2 dtheta)``, blind to the sign of the contrast, which TIR inverts) or
  ``magnitude`` (the summed gradient magnitude, minus its mean);
* ``phase``: whiten the cross-power spectrum (phase correlation) or not (plain cross-correlation).

The correlation is linear (zero-padded), computed with ``torch.fft`` for the whole batch at once, over
the whole frame (a Hann window is an option: measured, it loses, since the background moves with the
frame); the peak inside ``+-radius`` px is refined to sub-pixel by a parabola per axis. Its confidence is
the peak over the highest value outside a 2-px neighbourhood; below ``min_confidence`` (or on a
featureless image) the displacement is 0. ``orientation`` without window is the measured choice
(``python -m benchmarks.registration``, docs/alignment.md). Nothing here learns: no parameters, no
state-dict keys.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# method name -> (feature, phase); "none" (no registration, the authors' model) is not a method
METHODS: dict[str, tuple[str, bool]] = {
    "magnitude": ("magnitude", False),
    "magnitude_phase": ("magnitude", True),
    "orientation": ("orientation", False),
    "orientation_phase": ("orientation", True),
}
NOISE_FLOOR = 0.1  # orientation: a gradient weighs |g|^2 / (|g|^2 + 0.1 x mean |g|^2) (measured)
DEADBAND_PX = 0.05  # a displacement below this (per axis) is 0: no interpolation for nothing
EXCLUSION_PX = 2  # the peak's neighbourhood left out when looking for the runner-up (confidence)


@dataclass
class RegistrationOutput:
    """Registered images and what was found, for the two moved modalities (order NIR, TIR)."""

    nir: torch.Tensor  # [B, C, H, W] NIR warped onto RGB
    tir: torch.Tensor  # [B, C, H, W] TIR warped onto RGB
    displacement: torch.Tensor  # [B, 2, 2] (NIR, TIR) x (x, y) pixels: modality(p + t) = RGB(p); 0 where unsure
    confidence: torch.Tensor  # [B, 2] peak ratio of each estimate (>= 1; 0 on a featureless image)


def search_radius(image_size: tuple[int, int], window: float) -> int:
    """Largest displacement searched per axis, in pixels: ``window`` x the shorter image side (at least 1)."""
    return max(1, int(round(window * min(image_size))))


def gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel gradients (x, y) of each channel, each [N, C, H, W], replicate border (separable, by slicing)."""
    padded = F.pad(images.float(), (1, 1, 1, 1), mode="replicate")
    smooth_y = padded[..., :-2, :] + 2 * padded[..., 1:-1, :] + padded[..., 2:, :]  # [N, C, H, W + 2]
    smooth_x = padded[..., :-2] + 2 * padded[..., 1:-1] + padded[..., 2:]  # [N, C, H + 2, W]
    gx = (smooth_y[..., 2:] - smooth_y[..., :-2]) / 8
    gy = (smooth_x[..., 2:, :] - smooth_x[..., :-2, :]) / 8
    return gx, gy


def feature_map(images: torch.Tensor, feature: str) -> torch.Tensor:
    """[N, C, H, W] -> complex [N, H, W] map that the correlation compares (module docstring).

    ``orientation``: the complex form of the colour structure tensor, sum over channels of
    ``(gx + i gy)^2``, over its trace plus a noise floor (``NOISE_FLOOR`` x the image's mean trace);
    ``magnitude``: the sum over channels of the gradient magnitude, minus its mean."""
    gx, gy = gradients(images)
    if feature == "magnitude":
        magnitude = (gx ** 2 + gy ** 2).sqrt().sum(dim=1)
        centred = magnitude - magnitude.mean(dim=(1, 2), keepdim=True)
        return torch.complex(centred, torch.zeros_like(centred))
    if feature != "orientation":
        raise ValueError(f"registration feature must be 'magnitude' or 'orientation', got {feature!r}.")
    trace = (gx ** 2 + gy ** 2).sum(dim=1)
    doubled = torch.complex((gx ** 2 - gy ** 2).sum(dim=1), (2 * gx * gy).sum(dim=1))
    floor = NOISE_FLOOR * trace.mean(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return doubled / (trace + floor)


def hann(h: int, w: int, device=None) -> torch.Tensor:
    """[h, w] separable Hann window (periodic=False: zero at the borders)."""
    return torch.outer(torch.hann_window(h, periodic=False, device=device),
                       torch.hann_window(w, periodic=False, device=device))


def fast_size(n: int) -> int:
    """The smallest m >= n whose prime factors are 2, 3 and 5 (a fast FFT length)."""
    m = n
    while True:
        rest = m
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 1


def correlation(ref: torch.Tensor, moved: torch.Tensor, phase: bool, radius: int,
                window: bool = False) -> torch.Tensor:
    """[N, 2r+1, 2r+1] ``c[dy, dx] = Re sum_p conj(ref(p)) moved(p + d)`` for |d| <= r (index r = 0).

    ``moved`` [N, H, W] may stack k batches against one ``ref`` [N / k, H, W] (NIR and TIR against RGB).

    A linear correlation (the frame is zero-padded by at least ``radius``: no wrap-around within the
    window), by FFT; ``phase`` whitens the cross-power spectrum; ``window`` multiplies both maps by a
    Hann window first (measured: it hides the background, which moves with the frame, and loses)."""
    h, w = ref.shape[-2:]
    if window:
        taper = hann(h, w, ref.device)
        ref, moved = ref * taper, moved * taper
    size = (fast_size(h + radius), fast_size(w + radius))
    reference = torch.fft.fft2(ref, s=size).conj()
    moved = torch.fft.fft2(moved, s=size)
    cross = (moved.unflatten(0, (-1, len(ref))) * reference).flatten(0, 1)  # ref tiled over the moved stack
    if phase:
        cross = cross / (cross.abs() + 1e-3 * cross.abs().mean(dim=(1, 2), keepdim=True) + 1e-20)
    surface = torch.fft.ifft2(cross).real
    index_y = torch.arange(-radius, radius + 1, device=ref.device) % size[0]
    index_x = torch.arange(-radius, radius + 1, device=ref.device) % size[1]
    return surface[:, index_y][:, :, index_x]


def peak(surface: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, 2r+1, 2r+1] -> sub-pixel peak (x, y) [N, 2] in pixels from the centre, and its confidence [N]."""
    n, side, _ = surface.shape
    r = side // 2
    flat = surface.reshape(n, -1)
    best = flat.argmax(dim=1)
    iy, ix = best // side, best % side
    rows = torch.arange(n, device=surface.device)

    def refine(index: torch.Tensor, values_at) -> torch.Tensor:
        lo, hi = (index - 1).clamp(0, side - 1), (index + 1).clamp(0, side - 1)
        left, mid, right = values_at(lo), values_at(index), values_at(hi)
        den = left - 2 * mid + right
        step = torch.where(den < 0, 0.5 * (left - right) / den.clamp(max=-1e-20), torch.zeros_like(den))
        inside = (index > 0) & (index < side - 1)
        return index.float() + torch.where(inside, step.clamp(-0.5, 0.5), torch.zeros_like(step))

    fx = refine(ix, lambda j: surface[rows, iy, j])
    fy = refine(iy, lambda j: surface[rows, j, ix])
    grid = torch.arange(side, device=surface.device)
    near = ((grid.view(1, -1, 1) - iy.view(-1, 1, 1)).abs() <= EXCLUSION_PX) & \
           ((grid.view(1, 1, -1) - ix.view(-1, 1, 1)).abs() <= EXCLUSION_PX)
    top = flat.gather(1, best[:, None]).squeeze(1)
    runner_up = surface.masked_fill(near, -math.inf).reshape(n, -1).amax(dim=1)
    confidence = torch.where(runner_up > 0, top / runner_up.clamp_min(1e-20), torch.zeros_like(top))
    confidence = torch.where((top > 0) & (runner_up <= 0), torch.full_like(top, math.inf), confidence)
    return torch.stack([fx - r, fy - r], dim=1), confidence


@torch.no_grad()
def estimate_shift(ref: torch.Tensor, moved: torch.Tensor, method: str = "orientation", radius: int = 20,
                   min_confidence: float = 1.0, window: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Displacement ``t`` [N, 2] (x, y) px with ``moved(p + t) ~ ref(p)`` and its confidence [N].

    Args:
        ref, moved: [N, C, H, W] images (any normalisation; only their gradients count); ``moved`` may
            stack k batches [k x N] against one ``ref`` (each compared with the same references).
        method: a key of :data:`METHODS`.
        radius: the largest displacement searched per axis, in pixels.
        min_confidence: below this peak ratio the displacement is 0 (a featureless image gives 0).
        window: apply a Hann window before correlating (off: measured worse, docs/alignment.md).
    """
    if method not in METHODS:
        raise ValueError(f"registration method must be one of {sorted(METHODS)}, got {method!r}.")
    feature, phase = METHODS[method]
    surface = correlation(feature_map(ref, feature), feature_map(moved, feature), phase, radius, window)
    shift, confidence = peak(surface)
    sure = (confidence >= min_confidence) & torch.isfinite(shift).all(dim=1)
    shift = torch.where(sure[:, None] & (shift.abs() >= DEADBAND_PX), shift, torch.zeros_like(shift))
    return shift, confidence


def translate(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] images moved so that ``out(p) = images(p + shift)`` (shift [N, 2] (x, y) px; bilinear,
    reflection border). Images with a zero shift come back unchanged, bit for bit."""
    n, _, h, w = images.shape
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = shift[:, 0].to(images.dtype) * 2 / w
    theta[:, 1, 2] = shift[:, 1].to(images.dtype) * 2 / h
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    still = (shift == 0).all(dim=1).view(n, 1, 1, 1)
    return torch.where(still, images, moved)


class Registration(nn.Module):
    """Warp NIR and TIR onto RGB by the translation :func:`estimate_shift` finds for each triple."""

    def __init__(self, method: str, image_size: tuple[int, int], window: float, min_confidence: float):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"registration method must be one of {sorted(METHODS)}, got {method!r}.")
        self.method, self.min_confidence = method, min_confidence
        self.radius = search_radius(image_size, window)

    def forward(self, rgb: torch.Tensor, nir: torch.Tensor, tir: torch.Tensor) -> RegistrationOutput:
        b = rgb.shape[0]
        moved = torch.cat([nir, tir], dim=0)
        shift, confidence = estimate_shift(rgb, moved, self.method, self.radius, self.min_confidence)
        warped = translate(moved, shift)
        return RegistrationOutput(nir=warped[:b], tir=warped[b:],
                                  displacement=shift.unflatten(0, (2, b)).transpose(0, 1),
                                  confidence=confidence.unflatten(0, (2, b)).transpose(0, 1))


def displacement_on_grid(shift: torch.Tensor, grid_size: tuple[int, int], image_size: tuple[int, int]
                         ) -> torch.Tensor:
    """[..., 2] (x, y) pixels -> the same displacement in LAM's units ([-1, 1] over the patch grid,
    align_corners=True: one unit is (cells - 1) / 2 patches)."""
    (gh, gw), (h, w) = grid_size, image_size
    per_unit = shift.new_tensor([max(gw - 1, 1) * w / gw / 2, max(gh - 1, 1) * h / gh / 2])
    return shift / per_unit
