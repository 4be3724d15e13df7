"""Test helpers: random state dicts in the authors' checkpoint format, and seeded inputs.

The key names and shapes come from tests/fixtures/official_keys_*.json (what the authors'
model's state_dict() holds). Values are deterministic: each tensor has its own generator seeded
from (seed, key name), so the same state can be rebuilt anywhere, e.g. by a script that feeds it
to the authors' code to produce the expected features stored in tests/fixtures.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures"


def official_keys(layout: str) -> dict[str, list[int]]:
    """Key name -> shape for "concat" (RGBNT201 geometry) or "per_modality" (RGBNT100)."""
    return json.loads((FIXTURES / f"official_keys_{layout}.json").read_text())["keys"]


def _generator(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def official_state(layout: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in the authors' format with sane magnitudes."""
    state = {}
    for name, shape in official_keys(layout).items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros(shape, dtype=torch.long)
            continue
        z = torch.randn(shape, generator=_generator(seed, name))
        if name.endswith("running_var"):
            value = 1.0 + 0.5 * z.tanh()
        elif name.endswith("running_mean"):
            value = 0.1 * z
        elif name.endswith("contra_temp"):
            value = torch.full(shape, 0.07)
        elif name.endswith(("class_embedding", "positional_embedding", "base.proj")):
            value = 768 ** -0.5 * z
        elif name.endswith(".weight") and len(shape) == 1:  # LayerNorm / BatchNorm scale
            value = 1.0 + 0.1 * z
        else:
            value = 0.02 * z
        state[name] = value
    return state


def seeded_inputs(image_size: tuple[int, int], batch: int, num_cameras: int, seed: int = 0) -> dict:
    """{'rgb', 'nir', 'tir': [B, 3, H, W] N(0, 1) images, 'cam': [B] camera ids}."""
    g = torch.Generator().manual_seed(seed)
    images = {m: torch.randn(batch, 3, *image_size, generator=g) for m in ("rgb", "nir", "tir")}
    return {**images, "cam": torch.randint(0, num_cameras, (batch,), generator=g)}
