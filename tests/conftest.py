import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tests/official_format.py
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_cfg():
    from signal_core import SignalConfig

    return SignalConfig.preset("tiny", num_classes=6, num_cameras=3)


def make_batch(cfg, batch=8, ids=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = [torch.randn(batch, 3, *cfg.image_size, generator=g) for _ in range(3)]
    cams = torch.randint(0, cfg.num_cameras or 1, (batch,), generator=g)
    targets = torch.arange(batch) % ids
    return images, cams, targets
