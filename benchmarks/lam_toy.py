"""LAM on a controlled toy: can the deformable samplers learn a NIR / TIR shift, and which kind?

Fixed smooth random feature maps (the 8 x 4 token grid of train/configs/alignment.yaml, 4 x 2 LAM
points), NIR and TIR cut from the same map shifted by a known amount; only the samplers train (the
features are fixed, so no collapse is possible), with the LAM MSE alone. Three kinds of shift:
``constant`` (the same for every sample: what the diagnosis' toy used), ``rig`` (one of 4 fixed
shifts per sample, the "camera" being visible to nobody, plus jitter: as the alignment preset) and
``random`` (uniform per sample). Each sampler sees only its own modality, so it can only learn a
shift it can infer from that modality alone. Prints, per variant and kind, the Pearson r and slope of
the offset relative to RGB's against the true shift (in cells), and the MSE ratio to zero offsets.

``python -m benchmarks.lam_toy [--steps 300]``: 9 trainings of 300 steps, several minutes on one core.
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from signal_core.model.lam import LocalAlignment

H, W, D, B = 8, 4, 32, 32
VARIANTS = {"authors (1 channel, official grid)": dict(offset_channels=1, reference_mode="official"),
            "fix (2 channels, centred grid)": dict(offset_channels=2, reference_mode="centred"),
            "fix + offsets that see RGB (toy only)": dict(offset_channels=2, reference_mode="centred", guided=True),
            "fix + matched offsets (lam_offsets: matched)": dict(offset_channels=2, reference_mode="centred",
                                                                 offsets="matched")}
RIGS = torch.tensor([[1.0, 0.5], [-1.0, 1.0], [0.5, -1.0], [-0.5, -0.5]])  # (x, y) cells


def smooth_maps(n: int, g: torch.Generator) -> torch.Tensor:
    """[n, D, 3H, 3W] smooth random maps (low-frequency noise upsampled)."""
    coarse = torch.randn(n, D, 6, 4, generator=g)
    return F.interpolate(coarse, size=(3 * H, 3 * W), mode="bicubic", align_corners=True)


def shifts(kind: str, n: int, g: torch.Generator) -> torch.Tensor:
    """[n, 2, 2] (modality NIR/TIR, (x, y)) shifts in cells."""
    if kind == "constant":
        return torch.tensor([[1.0, 1.0], [2.0, 0.0]]).expand(n, 2, 2).clone()
    if kind == "rig":
        idx = torch.randint(len(RIGS), (n, 2), generator=g)
        return RIGS[idx] + 0.25 * (2 * torch.rand(n, 2, 2, generator=g) - 1)
    return 2 * (2 * torch.rand(n, 2, 2, generator=g) - 1)


def crop(maps: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """[n, D, H, W] windows of the big maps, the window moved by ``shift`` (x, y) cells (bilinear)."""
    n = maps.shape[0]
    ys, xs = torch.meshgrid(torch.arange(H) + H, torch.arange(W) + W, indexing="ij")
    x = (xs[None] + shift[:, 0, None, None]) / (3 * W - 1) * 2 - 1
    y = (ys[None] + shift[:, 1, None, None]) / (3 * H - 1) * 2 - 1
    return F.grid_sample(maps, torch.stack([x, y], -1).float(), align_corners=True).reshape(n, D, H, W)


def batch(kind: str, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    maps, s = smooth_maps(B, g), shifts(kind, B, g)
    rgb = crop(maps, torch.zeros(B, 2))
    patches = torch.stack([rgb, crop(maps, -s[:, 0]), crop(maps, -s[:, 1])], 1)  # content moved by +s: [B, 3, D, H, W]
    return patches.flatten(3).transpose(2, 3), s  # [B, 3, L, D]


def relative_offsets(out, grid=(H, W)) -> torch.Tensor:
    """[B, 2, 2] mean offset of NIR / TIR minus RGB's, in cells (x, y)."""
    delta = (out.positions - out.reference).mean(dim=(2, 3))  # [B, 3, 2] normalised
    cells = delta * torch.tensor([(grid[1] - 1) / 2, (grid[0] - 1) / 2])
    return cells[:, 1:] - cells[:, :1]


class GuidedAlignment(LocalAlignment):
    """Toy only (not a project option): each sampler's offset net sees its own map AND RGB's
    (proj_q on the channel concatenation), so it can infer a shift that varies per sample."""

    def __init__(self, **kw):
        super().__init__(D, (H, W), stride=2, **kw)
        for sampler in self.samplers:
            sampler.proj_q = torch.nn.Conv2d(2 * D, D, kernel_size=1)
        self.rgb = None

    def forward(self, patches):
        b = patches.shape[0]
        self.rgb = patches[:, 0].reshape(b, H, W, D).permute(0, 3, 1, 2)
        for sampler in self.samplers:
            sampler.proj_q.guide = self.rgb
        return super().forward(patches)


def _guided_proj(conv):
    def forward(x):
        return torch.nn.functional.conv2d(torch.cat([x, conv.guide], 1), conv.weight, conv.bias)
    return forward


def run(variant: dict, kind: str, steps: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    if variant.get("guided"):
        lam = GuidedAlignment(**{k: v for k, v in variant.items() if k != "guided"})
        for sampler in lam.samplers:
            sampler.proj_q.forward = _guided_proj(sampler.proj_q)
    else:
        lam = LocalAlignment(D, (H, W), stride=2, **variant)
    opt = torch.optim.Adam(lam.parameters(), lr=3e-3)
    for _ in range(steps):
        patches, _ = batch(kind, g)
        loss = LocalAlignment.loss(lam(patches))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        patches, s = batch(kind, torch.Generator().manual_seed(999))
        out = lam(patches)
        rel = relative_offsets(out)
        zero = LocalAlignment.loss(type(out)(sampled=torch.stack([F.grid_sample(
            patches[:, m].transpose(1, 2).reshape(B, D, H, W), out.reference[None].expand(B, -1, -1, -1),
            align_corners=True) for m in range(3)], 1), reference=out.reference, positions=out.positions))
        mse = LocalAlignment.loss(out)
    t, p = s - s.mean(0), rel - rel.mean(0)
    r = float((t * p).sum() / ((t ** 2).sum() * (p ** 2).sum()).sqrt())
    return {"r": r, "slope": float((t * p).sum() / (t ** 2).sum()), "mse_ratio": float(mse / zero),
            "error": float((rel - s).norm(dim=-1).mean())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lam_toy", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--only", default="", help="run only the variants whose name contains this text")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print("| variant | shift | r | slope | error (cells) | MSE / MSE at zero offset |\n|---|---|---|---|---|---|")
    for name, variant in VARIANTS.items():
        if args.only not in name:
            continue
        for kind in ("constant", "rig", "random"):
            res = run(variant, kind, args.steps)
            print(f"| {name} | {kind} | {res['r']:.3f} | {res['slope']:.3f} | {res['error']:.2f} | "
                  f"{res['mse_ratio']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
