"""Where is the NIR / TIR shift of the alignment preset visible? Global matching against RGB at several levels.

For each test triple of a generated benchmark (``python -m train.synthetic --preset alignment``), the
modality is matched against RGB by one global cost over every displacement (the mean over the image of
the product of the two maps, each standardised per image); the best displacement (pixels, or tokens x
patch size) is compared with the shift ``synthetic.json`` records: Pearson r and slope of the two
(x and y pooled, each axis centred; r is nan where the match never moves), as ``train/offsets.py``
reports LAM's offsets. Levels:

* grey pixels, and the edge magnitude of the grey image averaged over 1, 2, 4 px and a patch (the
  token grid), each searched over displacements of up to 12 px;
* the raw pixels of each patch (what a patch embedding sees), and with ``--weights`` a trained model's
  patch embeddings and the final patch tokens (what LAM samples and what ``lam_offsets: matched``
  matches), on the token grid.

``python -m benchmarks.shift_visibility --data-root DIR [--weights RUN/last.safetensors] [--n 400]``:
seconds on one core.
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from signal_core import load_weights
from signal_core.data import TripleDataset, build_transforms, load_dataset

MODALITIES = ("rgb", "nir", "tir")
RANGE_PX = 12  # displacements searched: up to 12 px per axis (the preset's shifts reach 8 + 2 px)


def standardise(maps: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] -> zero mean, unit std per image."""
    maps = maps - maps.mean(dim=(1, 2, 3), keepdim=True)
    return maps / maps.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)


def best_displacement(ref: torch.Tensor, moved: torch.Tensor, radius: int) -> torch.Tensor:
    """[N, 2] (x, y) displacement d (in map cells, |d| <= radius per axis) maximising the mean of
    ref(p) * moved(p + d)."""
    h, w = ref.shape[-2:]
    ref, padded = standardise(ref), F.pad(standardise(moved), (radius,) * 4)
    steps = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    windows = (padded[:, :, radius + dy:radius + dy + h, radius + dx:radius + dx + w] for dy, dx in steps)
    cost = torch.stack([(ref * moved_d).mean(dim=(1, 2, 3)) for moved_d in windows], dim=1)
    grid = torch.tensor(steps, dtype=torch.float32).flip(-1)  # (x, y)
    return grid[cost.argmax(dim=1)]


def grey(images: torch.Tensor) -> torch.Tensor:
    return images.mean(dim=1, keepdim=True)


def edges(images: torch.Tensor) -> torch.Tensor:
    g = grey(images)
    dx = F.pad(g[..., :, 1:] - g[..., :, :-1], (0, 1))
    dy = F.pad(g[..., 1:, :] - g[..., :-1, :], (0, 0, 0, 1))
    return dx.abs() + dy.abs()


def patch_pixels(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[N, 3 * patch^2, h, w] the raw pixels of each patch."""
    n, _, height, width = images.shape
    return F.unfold(images, patch, stride=patch).reshape(n, -1, height // patch, width // patch)


def model_maps(model, batch: dict) -> dict[str, list[torch.Tensor]]:
    """Per modality [N, D, h, w]: the patch embeddings (the first conv's output) and the final patch tokens."""
    conv = model.backbone.visual.conv1
    seen: list[torch.Tensor] = []
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        _, patches = model.encode(batch["rgb"], batch["nir"], batch["tir"], batch["camid"])
    finally:
        handle.remove()
    h, w = model.cfg.grid_size
    embeds = torch.cat(seen).reshape(3, -1, *seen[0].shape[1:]).unbind(0) if len(seen) == 1 else seen
    tokens = patches.reshape(patches.shape[0], 3, h, w, -1).permute(1, 0, 4, 2, 3).unbind(0)
    return {"patch embeddings (trained model)": list(embeds), "final patch tokens (trained model)": list(tokens)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.shift_visibility", description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True,
                   help="a generated benchmark (python -m train.synthetic --preset alignment)")
    p.add_argument("--weights", help="a checkpoint trained on it (adds its patch embeddings and tokens)")
    p.add_argument("--size", type=int, nargs=2, default=(64, 32), metavar=("H", "W"), help="model input size")
    p.add_argument("--patch", type=int, default=8, help="patch size in pixels (the token grid)")
    p.add_argument("--n", type=int, default=400, help="test triples used")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from train.offsets import fit, true_shifts  # the recorded shifts and the fit, as the report has them

    records = load_dataset("rgbnt201", args.data_root).query[:args.n]
    true = true_shifts(args.data_root, records)
    batch = next(iter(DataLoader(TripleDataset(records, build_transforms(tuple(args.size), train=False)),
                                 batch_size=len(records))))
    radius = max(1, RANGE_PX // args.patch)
    levels: dict[str, tuple[list[torch.Tensor], int, int]] = {  # maps per modality, cell size in px, radius
        "grey pixels": ([grey(batch[m]) for m in MODALITIES], 1, RANGE_PX)}
    for pool in sorted({1, 2, 4, args.patch}):
        levels[f"edge magnitude, mean over {pool} x {pool} px"] = (
            [F.avg_pool2d(edges(batch[m]), pool) for m in MODALITIES], pool, max(1, RANGE_PX // pool))
    levels["raw pixels of each patch"] = ([patch_pixels(batch[m], args.patch) for m in MODALITIES], args.patch, radius)
    if args.weights:
        with torch.no_grad():
            for name, maps in model_maps(load_weights(args.weights), batch).items():
                levels[name] = (maps, args.patch, radius)
    print(f"{len(records)} test triples of {args.data_root}; r and slope of the found displacement on the true shift\n")
    print("| level | NIR r | NIR slope | TIR r | TIR slope |\n|---|---|---|---|---|")
    for name, (maps, cell, reach) in levels.items():
        cells = []
        for index in (1, 2):
            found = best_displacement(maps[0], maps[index], reach).numpy() * cell
            result = fit(found, true[:, index])
            cells += [f"{result['r']:.3f}", f"{result['slope']:.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
