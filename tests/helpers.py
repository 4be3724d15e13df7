"""Small helpers shared by the model tests."""
import torch


def make_batch(cfg, batch=8, ids=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = [torch.randn(batch, 3, *cfg.image_size, generator=g) for _ in range(3)]
    cams = torch.randint(0, cfg.num_cameras or 1, (batch,), generator=g)
    targets = torch.arange(batch) % ids
    return images, cams, targets
