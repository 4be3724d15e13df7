"""On-disk cache of gallery features, so that a restart does not re-encode the gallery.

One safetensors file per key, ``<cache_dir>/gallery-<key[:32]>.safetensors``. The key is a SHA-256
over everything the features depend on: the model (weights file content hash and config), the
gallery (every file's path, size and modification time, identities and cameras), the precision,
the device type and the input size. A changed model or gallery gives a new key, so a new file.
Writes are atomic (temporary file + ``os.replace``). A file that cannot be read, whose stored key
differs, whose shape is wrong or whose checksum does not match is reported as corrupt and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from signal_core.data import label_or_none
from signal_core.utils.atomic import atomic_write
from signal_core.utils.hashing import sha256_file

from .gallery import Gallery

log = logging.getLogger(__name__)
CACHE_FORMAT = "signal-demo-gallery-features/1"  # bump when the way features are computed changes
DEFAULT_CACHE_DIR = Path("~/.cache/signal-demo")


def default_cache_dir() -> Path:
    """``$SIGNAL_CACHE_DIR`` if set, else ``~/.cache/signal-demo``."""
    return Path(os.environ.get("SIGNAL_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()


def model_fingerprint(weights: str | os.PathLike | None, config_json: str,
                      state_dict: dict | None = None) -> dict:
    """What identifies the model: its config and its weights file's content hash, or, without a
    file, a hash of ``state_dict``'s tensors."""
    if weights:
        digest = sha256_file(weights)
    elif state_dict is not None:
        h = hashlib.sha256()
        for name, tensor in sorted(state_dict.items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        digest = h.hexdigest()
    else:
        raise ValueError("model_fingerprint needs the weights file or the state dict.")
    return {"weights_sha256": digest, "config": config_json}


def gallery_fingerprint(gallery: Gallery) -> dict:
    """What identifies the gallery: each file's absolute path, size and mtime; ids and cameras."""
    files = []
    for path in gallery.files():
        st = os.stat(path)
        files.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
    # unknown labels as null, as in every JSON the project writes
    entries = [[list(e.paths), label_or_none(e.pid), label_or_none(e.camid)] for e in gallery.entries]
    return {"files": files, "entries": entries}


def cache_key(model_fp: dict, gallery_fp: dict, precision: str, device_type: str,
              image_size: tuple[int, int]) -> str:
    """The SHA-256 hex key of one (model, gallery, precision, device, input size) combination."""
    payload = {"format": CACHE_FORMAT, "model": model_fp, "gallery": gallery_fp, "precision": precision,
               "device": device_type, "image_size": list(image_size)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _checksum(feats: torch.Tensor) -> str:
    return hashlib.sha256(feats.contiguous().numpy().tobytes()).hexdigest()


class FeatureCache:
    """Gallery features stored under ``directory`` by key."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.directory / f"gallery-{key[:32]}.safetensors"

    def load(self, key: str, count: int) -> torch.Tensor | None:
        """The cached ``[count, F]`` float32 features for ``key``, or None when absent or corrupt."""
        from safetensors import safe_open

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                feats = f.get_tensor("features")
            if meta.get("key") != key:
                raise ValueError("stored key differs")
            if feats.dtype != torch.float32 or feats.dim() != 2 or feats.shape[0] != count:
                raise ValueError(f"unexpected features {feats.dtype} {tuple(feats.shape)}")
            if meta.get("sha256") != _checksum(feats):
                raise ValueError("checksum mismatch")
            return feats
        except Exception as exc:  # noqa: BLE001 - any unreadable file is rebuilt
            log.warning("gallery feature cache %s is corrupt (%s): rebuilding it", path, exc)
            return None

    def save(self, key: str, feats: torch.Tensor) -> Path:
        """Write ``feats`` for ``key`` atomically; returns the file path."""
        from safetensors.torch import save_file

        feats = feats.detach().float().cpu().contiguous()
        meta = {"key": key, "sha256": _checksum(feats), "format": CACHE_FORMAT}
        return atomic_write(self.path(key), lambda tmp: save_file({"features": feats}, tmp, metadata=meta))

    def get_or_compute(self, key: str, count: int, compute: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, bool]:
        """(features, True) from the cache, or (``compute()``, False) after storing them.

        A failure to write the cache (read-only or full disk, whatever the writer raises) is logged and
        does not stop the demo.
        """
        feats = self.load(key, count)
        if feats is not None:
            return feats, True
        feats = compute()
        try:
            self.save(key, feats)
        except Exception as exc:  # noqa: BLE001 - OSError, or safetensors' SafetensorError on a full disk: the
            # cache is optional, the features are kept in memory
            log.warning("could not write the gallery feature cache in %s (%s: %s); continuing without it",
                        self.directory, exc.__class__.__name__, exc)
        return feats, False
