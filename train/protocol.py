"""The test protocol: features of a dataset's query and gallery splits, ranked and scored as the authors do."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from signal_core import SignalModel
from signal_core.data import ReIDDataset, TripleDataset, build_transforms
from signal_core.metrics import RankResult, evaluate_rank, pairwise_distance, re_ranking
from signal_core.retrieval.split_features import FeaturesFn, extract_dataset_features


def test_loader(records, image_size: tuple[int, int], batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(TripleDataset(records, build_transforms(image_size, train=False)), batch_size=batch_size,
                      shuffle=False, num_workers=num_workers)


def evaluate_model(model: SignalModel, dataset: ReIDDataset, device: torch.device, batch_size: int = 128,
                   num_workers: int = 4, missing: str | None = None, rerank: bool = False,
                   progress: bool = True, features_fn: FeaturesFn | None = None) -> RankResult:
    """mAP / mINP / CMC of ``model`` on ``dataset`` with the authors' protocol (scene ids if any);
    ``rerank`` applies k-reciprocal re-ranking (the authors report results without it);
    ``features_fn``: a feature engine (signal_core.deploy.engines) computing the features instead of ``model``."""
    size = model.cfg.image_size
    q = extract_dataset_features(model, test_loader(dataset.query, size, batch_size, num_workers), device,
                                 missing=missing, progress=progress, desc="query", features_fn=features_fn)
    g = extract_dataset_features(model, test_loader(dataset.gallery, size, batch_size, num_workers), device,
                                 missing=missing, progress=progress, desc="gallery", features_fn=features_fn)
    dist = pairwise_distance(q.feats, g.feats)
    if rerank:
        dist = re_ranking(dist, pairwise_distance(q.feats, q.feats), pairwise_distance(g.feats, g.feats))
    scenes = (q.sceneids, g.sceneids) if bool((q.sceneids >= 0).all() and (g.sceneids >= 0).all()) else (None, None)
    return evaluate_rank(dist, q.pids, g.pids, q.camids, g.camids, *scenes)


def format_metrics(metrics: dict[str, float]) -> str:
    """A small text table of mAP, mINP, R1, R5, R10 (percent)."""
    names = ["mAP", "mINP", "R1", "R5", "R10"]
    head = " | ".join(f"{n:>6}" for n in names)
    row = " | ".join(f"{metrics[n]:6.2f}" for n in names)
    return f"{head}\n{'-' * len(head)}\n{row}"
