"""Static probes behind docs/alignment.md: GAM's loss on random / aligned features, the reference grids,
and on the bundled demo model (an 8 identities x 4 batch of the demo gallery): feature collinearity,
Gram volumes, the raw GAM loss, LAM's offsets, the sampled features' variance against the same
architecture at its initialisation. ``python -m benchmarks.alignment_probe``; seconds on one core.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from signal_core import build_model, load_checkpoint
from signal_core.data import TripleDataset, build_transforms
from signal_core.data.rgbnt201 import parse_split
from signal_core.model.gam import GlobalAlignment
from signal_core.model.lam import LocalAlignment, reference_points
from signal_core.viz.overlays import offset_pixels


def formulation() -> None:
    """GAM on random, aligned and NIR = TIR features (B = 32); the grids' coordinates."""
    torch.manual_seed(0)
    g = GlobalAlignment()
    rand = torch.randn(32, 3, 32, 128)
    same = torch.randn(32, 1, 32, 128).expand(32, 3, 32, 128)
    nt = rand.clone()
    nt[:, 2] = nt[:, 1]
    print(f"ln 32 = {math.log(32):.5f}, 0.2 x ln 32 = {0.2 * math.log(32):.5f}")
    with torch.no_grad():
        for name, x in (("random", rand), ("R = N = T", same), ("NIR = TIR", nt)):
            print(f"GAM loss, {name} features: {g.loss(g.volumes(x)).item():.5f}")
    x = same.clone().requires_grad_(True)
    g.loss(g.volumes(x)).backward()
    print(f"exactly aligned features give finite gradients: {bool(torch.isfinite(x.grad).all())}")
    for mode in ("official", "paper", "centred"):
        ref = reference_points(4, 2, mode, grid=(16, 8))
        print(f"{mode} grid 4 x 2 on 16 x 8: y {[round(v, 3) for v in ref[:, 0, 0].tolist()]}, "
              f"x {[round(v, 3) for v in ref[0, :, 1].tolist()]}")


def demo_batch(model, folder: str = "assets/demo/gallery"):
    """8 identities x 4 triples of the demo gallery, test transform."""
    by_pid: dict[int, list] = {}
    for r in parse_split(Path(folder)):
        by_pid.setdefault(r.pid, []).append(r)
    records = [r for pid in sorted(by_pid)[:8] for r in by_pid[pid][:4]]
    ds = TripleDataset(records, build_transforms(model.cfg.image_size, train=False))
    items = [ds[i] for i in range(len(ds))]
    images = [torch.stack([it[k] for it in items]) for k in ("rgb", "nir", "tir")]
    return images, torch.tensor([it["camid"] for it in items]), torch.tensor([it["pid"] for it in items])


@torch.no_grad()
def bundled(weights: str = "assets/demo_model.safetensors") -> None:
    m = load_checkpoint(weights).eval()
    (rgb, nir, tir), cams, pids = demo_batch(m)
    _, patches = m.encode(rgb, nir, tir, cams)
    f = F.normalize(patches.mean(2), dim=-1)  # [B, 3, D]
    within = torch.stack([(f[:, a] * f[:, b]).sum(-1) for a, b in ((0, 1), (0, 2), (1, 2))]).mean()
    flat = f.reshape(-1, f.shape[-1])
    across = (flat @ flat.T)[~torch.eye(len(flat), dtype=torch.bool)].mean()
    s = torch.linalg.svdvals(flat)
    print(f"bundled model: cosine within a sample {within:.4f}, across samples {across:.4f}, "
          f"top singular value's energy {s[0] ** 2 / (s ** 2).sum():.3f}")
    v = m.gam.volumes(patches)
    same_id = pids[:, None] == pids[None]
    other_triple = ~torch.eye(32, dtype=torch.bool)
    print(f"volumes: own triple {v.diag().mean():.3e}, same identity {v[same_id & other_triple].mean():.3e}, "
          f"other identity {v[~same_id].mean():.3e}; tau {m.gam.tau.item():.4f}")
    logits = -v / m.gam.tau
    print(f"logit spread per row {(logits.max(1).values - logits.min(1).values).mean():.4f}")
    raw = m.gam.loss(v)
    print(f"raw GAM loss {raw:.5f} (ln 32 = {math.log(32):.5f}), "
          f"logged (x alpha {m.cfg.alpha}) {m.cfg.alpha * raw:.5f}")
    fixed = GlobalAlignment(0.07, 0.1, standardise=True, learn_tau=False)
    aware = GlobalAlignment(0.07, 0.1, identity_negatives=True)
    print(f"same features: standardised + tau 0.07 {fixed.loss(fixed.volumes(patches)):.5f}, "
          f"identity-aware negatives {aware.loss(v, pids):.5f}")
    lam = m.lam(patches)
    for i, name in enumerate(("rgb", "nir", "tir")):
        px = offset_pixels(lam.reference.numpy(), lam.positions[:, i].numpy(), m.cfg.grid_size, m.cfg.image_size)
        print(f"LAM {name}: mean offset {px.mean():.3f} px")
    smp = lam.sampled  # [B, 3, D, Hk, Wk]
    shuffled = smp[torch.roll(torch.arange(32), 4), 0]
    print(f"sampled features: per-channel variance {smp.var(dim=(0, 3, 4)).mean():.4f}, "
          f"token std over positions {patches.std(dim=2).mean():.4f}; NIR-RGB MSE matched "
          f"{F.mse_loss(smp[:, 1], smp[:, 0]):.5f} vs shuffled {F.mse_loss(smp[:, 1], shuffled):.5f}; "
          f"LAM loss {LocalAlignment.loss(lam):.5f}")
    print("proj_q weight norms", [round(float(s.proj_q.weight.norm()), 4) for s in m.lam.samplers])
    torch.manual_seed(1234)
    u = build_model(m.cfg.replace(num_classes=None)).eval()
    _, p0 = u.encode(rgb, nir, tir, cams)
    proj_q_norms = [round(float(s.proj_q.weight.norm()), 4) for s in u.lam.samplers]
    print(f"at initialisation: per-channel variance {u.lam(p0).sampled.var(dim=(0, 3, 4)).mean():.4f}, token std "
          f"{p0.std(dim=2).mean():.4f}, proj_q norms {proj_q_norms}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    formulation()
    bundled()
