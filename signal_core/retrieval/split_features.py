"""Feature extraction over a dataset, and the missing-modality protocol.

Missing-modality test (as the multi-modal ReID literature reports it, e.g. TOP-ReID, DeMo): the
normalised input tensor of each missing modality is replaced by zeros, for both query and gallery.
Settings are named by the missing modalities: "r", "n", "t", "rn", "rt", "nt".
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import UNKNOWN
from ..modalities import MISSING_SETTINGS, missing_names
from ..model.signal_model import SignalModel

__all__ = ["MISSING_SETTINGS", "DatasetFeatures", "FeaturesFn", "as_engine", "batch_features", "drop_modalities",
           "extract_dataset_features", "run_features"]

# A feature engine (signal_core.deploy.engines): (rgb, nir, tir [B, 3, H, W], cam_ids [B] or None) -> [B, F] numpy
FeaturesFn = Callable[..., np.ndarray]



@dataclass
class DatasetFeatures:
    """Features and labels of one split, in loader order."""

    feats: torch.Tensor  # [N, F] float32 on the CPU
    pids: torch.Tensor  # [N]
    camids: torch.Tensor  # [N]
    sceneids: torch.Tensor  # [N], -1 where the dataset has none


def drop_modalities(batch: dict, missing: str | None) -> dict:
    """A copy of ``batch`` with the images of the ``missing`` modalities zeroed."""
    names = missing_names(missing)
    if not names:
        return batch
    return dict(batch) | {name: torch.zeros_like(batch[name]) for name in names}


def run_features(features_fn: FeaturesFn, rgb: torch.Tensor, nir: torch.Tensor, tir: torch.Tensor,
                 cam_ids: torch.Tensor | None) -> torch.Tensor:
    """``features_fn`` on CPU tensors, as a [B, F] float32 CPU tensor (what extract_features returns)."""
    cams = None if cam_ids is None else cam_ids.cpu()
    return torch.from_numpy(features_fn(rgb.cpu(), nir.cpu(), tir.cpu(), cams))


def as_engine(model: SignalModel, features_fn: FeaturesFn | None = None) -> FeaturesFn:
    """The feature engine every batched loop runs: ``features_fn`` when given (onnxruntime, OpenVINO),
    else the model itself as a torch engine in its inference precision."""
    if features_fn is not None:
        return features_fn
    from ..deploy.engines import TorchEngine

    return TorchEngine(model, model.inference_precision)


def batch_features(engine: FeaturesFn, rgb: torch.Tensor, nir: torch.Tensor, tir: torch.Tensor,
                   camids: Sequence[int] | torch.Tensor | None, num_cameras: int) -> torch.Tensor:
    """[B, F] float32 CPU features of one batch through ``engine`` (see :func:`as_engine`).

    Args:
        camids: 0-based camera per triple, or None for all; a camera that is unknown
            (:data:`signal_core.data.UNKNOWN`) or that the model has no embedding for uses the mean
            camera embedding, within the same batch.
        num_cameras: the model's number of cameras.
    """
    if camids is None:
        return run_features(engine, rgb, nir, tir, None)
    ids = torch.as_tensor(camids, dtype=torch.int64).reshape(-1)
    ids = torch.where((ids >= 0) & (ids < num_cameras), ids, torch.full_like(ids, UNKNOWN))
    return run_features(engine, rgb, nir, tir, ids)


@torch.no_grad()
def extract_dataset_features(model: SignalModel, loader: Iterable[dict], device: torch.device | str = "cpu",
                             missing: str | None = None, use_cameras: bool = True,
                             progress: bool = True, desc: str = "features",
                             features_fn: FeaturesFn | None = None) -> DatasetFeatures:
    """Run :meth:`SignalModel.extract_features` over batches of dicts with keys rgb, nir, tir, pid,
    camid (and optionally sceneid), as yielded by ``signal_core.data`` loaders.

    Args:
        use_cameras: pass the camera ids to the model (the authors do so at test time as well).
        missing: zero these modalities' inputs (see :data:`MISSING_SETTINGS`).
        features_fn: a feature engine to use instead of ``model.extract_features`` (same inputs).
    """
    engine = as_engine(model, features_fn)
    feats, pids, camids, sceneids = [], [], [], []
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        batch = drop_modalities(batch, missing)
        feats.append(batch_features(engine, batch["rgb"], batch["nir"], batch["tir"],
                                    batch["camid"] if use_cameras else None, model.num_cameras))
        pids.append(torch.as_tensor(batch["pid"]))
        camids.append(torch.as_tensor(batch["camid"]))
        sceneids.append(torch.as_tensor(batch.get("sceneid", torch.full_like(pids[-1], -1))))
    return DatasetFeatures(torch.cat(feats), torch.cat(pids), torch.cat(camids), torch.cat(sceneids))
