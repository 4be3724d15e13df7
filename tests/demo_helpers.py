"""Shared builders for the demo tests: a tiny random checkpoint and small generated triples folders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

NUM_CAMERAS = 4


def make_checkpoint(path: Path, seed: int = 0) -> Path:
    """A tiny random Signal model saved as our safetensors checkpoint."""
    from signal_core import SignalConfig, build_model, save_checkpoint

    torch.manual_seed(seed)
    save_checkpoint(build_model(SignalConfig.preset("tiny", num_classes=6, num_cameras=NUM_CAMERAS)), path)
    return path


def make_triples_folder(root: Path, ids=(1, 2, 3, 4), per_id: int = 3, seed: int = 0, size=(64, 32)) -> Path:
    """A triples folder ``root/{RGB,NI,TI}/PPPPPP_camK_NNN.png``; each identity has its own colour."""
    rng = np.random.default_rng(seed)
    for d in ("RGB", "NI", "TI"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for pid in ids:
        base = np.array([(pid * 67) % 256, (pid * 131) % 256, (pid * 29) % 256], dtype=np.float32)
        for k in range(per_id):
            name = f"{pid:06d}_cam{k % NUM_CAMERAS + 1}_{k:03d}.png"
            noise = rng.normal(0, 25, size=(*size, 3))
            rgb = np.clip(base + noise, 0, 255).astype(np.uint8)
            Image.fromarray(rgb).save(root / "RGB" / name)
            Image.fromarray(rgb.mean(-1).astype(np.uint8)).save(root / "NI" / name)
            Image.fromarray(rgb.mean(-1).astype(np.uint16) * 200).save(root / "TI" / name)  # 16-bit TIR
    return root


def write_png_header(path: Path, width: int, height: int) -> Path:
    """A tiny RGBA PNG file that declares ``width`` x ``height`` pixels (header and one short data
    chunk only: readers that check the size before decoding never notice the missing rows)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
                     + chunk(b"IEND", b""))
    return path
