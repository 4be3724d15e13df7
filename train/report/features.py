"""Features of a split under every missing-modality setting in one pass over the data, and their ranking.

Each batch is read once and encoded seven times (full triple, then each of the six settings of
:data:`signal_core.retrieval.split_features.MISSING_SETTINGS` with those inputs zeroed), so the images are decoded
once. The full setting is computed exactly as :func:`train.protocol.evaluate_model` computes it
(same loader, same batches, same model call), so its metrics equal a plain evaluation bit for bit.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from signal_core import SignalModel
from signal_core.data import ReIDDataset, TripleRecord
from signal_core.metrics import RankResult, evaluate_rank, pairwise_distance
from signal_core.modalities import MISSING_SETTINGS, missing_names
from signal_core.retrieval.split_features import DatasetFeatures, FeaturesFn, drop_modalities, run_features

from ..protocol import test_loader

# report key (what is zeroed) -> letters for drop_modalities; "none" = the full triple
SETTINGS: dict[str, str | None] = {"none": None, **{"+".join(missing_names(s)): s for s in MISSING_SETTINGS}}


@dataclass
class SettingResult:
    """Ranking of one missing-modality setting."""

    result: RankResult
    query: DatasetFeatures
    gallery: DatasetFeatures


@torch.no_grad()
def extract_all_settings(model: SignalModel, records: Sequence[TripleRecord], device: torch.device,
                         batch_size: int, num_workers: int, progress: bool = True,
                         desc: str = "features", features_fn: FeaturesFn | None = None) -> dict[str, DatasetFeatures]:
    """Features of ``records`` under every setting of :data:`SETTINGS`, in loader order.

    The encoder treats the three modalities as independent images, so each batch is encoded once,
    and a zeroed modality's tokens (which depend only on the camera) are encoded once per camera;
    only SIM runs per setting. The full setting repeats :meth:`SignalModel.extract_features`'s own
    calls on the same batches (bit-identical; checked on the first batch, with a fallback to one
    ``extract_features`` call per setting if it ever differs). The six zeroed settings equal
    ``extract_features`` on zeroed inputs up to float rounding (the zero images are encoded in a
    batch of their own). With image-level registration, NIR / TIR are encoded once more as registered to
    a zeroed RGB (the settings without RGB), as ``extract_features`` sees them. With ``features_fn`` (a
    feature engine), it is called once per setting on the batch with those inputs zeroed.
    """
    loader = test_loader(records, model.cfg.image_size, batch_size, num_workers)
    feats: dict[str, list[torch.Tensor]] = {name: [] for name in SETTINGS}
    pids, camids, sceneids = [], [], []
    zeros, shared = _ZeroTokens(model, device), None
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
            if shared is None and features_fn is None:
                shared = _shared_encoding_matches(model, batch, device, zeros)
            per_setting = (_engine_settings(features_fn, batch) if features_fn is not None
                           else _encode_settings(model, batch, device, zeros) if shared
                           else _slow_settings(model, batch, device))
            for name, f in per_setting.items():
                feats[name].append(f.cpu())
            pids.append(torch.as_tensor(batch["pid"]))
            camids.append(torch.as_tensor(batch["camid"]))
            sceneids.append(torch.as_tensor(batch.get("sceneid", torch.full_like(pids[-1], -1))))
    finally:
        model.train(was_training)
    labels = torch.cat(pids), torch.cat(camids), torch.cat(sceneids)
    return {name: DatasetFeatures(torch.cat(f), *labels) for name, f in feats.items()}


def _engine_settings(features_fn: FeaturesFn, batch: dict) -> dict[str, torch.Tensor]:
    """Every setting through a feature engine: the batch with those modalities zeroed, one call each."""
    out = {}
    for name, letters in SETTINGS.items():
        b = drop_modalities(batch, letters)
        out[name] = run_features(features_fn, b["rgb"], b["nir"], b["tir"], b["camid"])
    return out


class _ZeroTokens:
    """Encoder output of an all-zero image per camera (the same for every modality), cached."""

    def __init__(self, model: SignalModel, device: torch.device):
        self.model, self.device = model, device
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, cams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cls [B, D] and patches [B, L, D] of a zero image seen by each camera of ``cams``."""
        new = sorted(set(cams.tolist()) - self.cache.keys())
        if new:
            z = torch.zeros(len(new), 3, *self.model.cfg.image_size, device=self.device)
            cls, patches = self.model.encode(z, z, z, torch.tensor(new, device=self.device), reduced_precision=True)
            self.cache.update({c: (cls[i, 0], patches[i, 0]) for i, c in enumerate(new)})
        cls, patches = zip(*(self.cache[c] for c in cams.tolist()))
        return torch.stack(cls), torch.stack(patches)


def _fuse(model: SignalModel, cls: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """Retrieval features from encoder tokens, as ``extract_features``: cat(cls_R, cls_N, cls_T, SIM)."""
    parts = [cls.flatten(1)]
    if model.sim is not None:
        parts.append(model.sim(cls, patches)[0])
    return torch.cat(parts, dim=1).float()


def _encode_settings(model: SignalModel, batch: dict, device: torch.device, zeros: _ZeroTokens) -> dict:
    """Every setting from one encoding of the batch (and, with image-level registration, one more of NIR / TIR
    as a zeroed RGB leaves them: ``extract_features`` registers the inputs it is given)."""
    cams = batch["camid"].to(device)
    rgb, nir, tir = (batch[k].to(device) for k in ("rgb", "nir", "tir"))
    cls, patches = _encode(model, rgb, nir, tir, cams)  # [B, 3, D], [B, 3, L, D]
    registered = model.registration is not None
    without_rgb = _encode(model, torch.zeros_like(rgb), nir, tir, cams) if registered else (cls, patches)
    zero_cls, zero_patches = zeros(cams)
    out = {}
    for name, letters in SETTINGS.items():
        c, p = without_rgb if "r" in (letters or "") else (cls, patches)
        if letters:
            c, p = c.clone(), p.clone()
        for letter in letters or "":
            i = "rnt".index(letter)
            c[:, i], p[:, i] = zero_cls, zero_patches
        out[name] = _fuse(model, c, p)
    return out


def _encode(model: SignalModel, rgb, nir, tir, cams) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder tokens as ``extract_features`` computes them: NIR / TIR registered to RGB first (if on)."""
    nir, tir, _ = model.register(rgb, nir, tir)
    return model.encode(rgb, nir, tir, cams, reduced_precision=True)


def _slow_settings(model: SignalModel, batch: dict, device: torch.device) -> dict:
    cams = batch["camid"].to(device)
    out = {}
    for name, letters in SETTINGS.items():
        b = drop_modalities(batch, letters)
        out[name] = model.extract_features(b["rgb"].to(device), b["nir"].to(device), b["tir"].to(device), cams)
    return out


def _shared_encoding_matches(model: SignalModel, batch: dict, device: torch.device, zeros: _ZeroTokens) -> bool:
    """Whether the shared encoding reproduces ``extract_features`` bit for bit on ``batch``."""
    cams = batch["camid"].to(device)
    plain = model.extract_features(batch["rgb"].to(device), batch["nir"].to(device), batch["tir"].to(device), cams)
    same = torch.equal(_encode_settings(model, batch, device, zeros)["none"], plain)
    if not same:
        warnings.warn("the report's shared encoding differs from extract_features; computing every "
                      "missing-modality setting with its own extract_features call (slower)", stacklevel=3)
    return same


def uses_scenes(query: DatasetFeatures, gallery: DatasetFeatures) -> bool:
    """True when every item has a scene id (MSVR310): the scene protocol, as evaluate_model decides."""
    return bool((query.sceneids >= 0).all() and (gallery.sceneids >= 0).all())


def rank_setting(query: DatasetFeatures, gallery: DatasetFeatures) -> RankResult:
    """mAP / mINP / CMC with the authors' protocol (the same calls as ``evaluate_model``, no re-ranking)."""
    dist = pairwise_distance(query.feats, gallery.feats)
    scenes = (query.sceneids, gallery.sceneids) if uses_scenes(query, gallery) else (None, None)
    return evaluate_rank(dist, query.pids, gallery.pids, query.camids, gallery.camids, *scenes)


def evaluate_all_settings(model: SignalModel, dataset: ReIDDataset, device: torch.device, batch_size: int,
                          num_workers: int, progress: bool = True,
                          features_fn: FeaturesFn | None = None) -> dict[str, SettingResult]:
    """Every setting's ranking; the gallery is encoded once when it is the query set (RGBNT201)."""
    query = extract_all_settings(model, dataset.query, device, batch_size, num_workers, progress, "query",
                                 features_fn)
    same = list(dataset.query) == list(dataset.gallery)
    gallery = query if same else extract_all_settings(model, dataset.gallery, device, batch_size, num_workers,
                                                      progress, "gallery", features_fn)
    return {name: SettingResult(rank_setting(query[name], gallery[name]), query[name], gallery[name])
            for name in SETTINGS}


def excluded_pairs(query: DatasetFeatures, gallery: DatasetFeatures) -> np.ndarray:
    """[Q, G] bool: the gallery items the protocol discards per query (same identity and same camera,
    or same scene under the scene protocol)."""
    q_pid, g_pid = query.pids.numpy()[:, None], gallery.pids.numpy()[None, :]
    if uses_scenes(query, gallery):
        return (q_pid == g_pid) & (query.sceneids.numpy()[:, None] == gallery.sceneids.numpy()[None, :])
    return (q_pid == g_pid) & (query.camids.numpy()[:, None] == gallery.camids.numpy()[None, :])


def cosine_similarity(query: DatasetFeatures, gallery: DatasetFeatures) -> np.ndarray:
    """[Q, G] float32 cosine similarities of the L2-normalised features."""
    q = torch.nn.functional.normalize(query.feats.float(), dim=1)
    g = torch.nn.functional.normalize(gallery.feats.float(), dim=1)
    return (q @ g.T).numpy()
