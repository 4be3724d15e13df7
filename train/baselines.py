"""Colour-histogram baseline on a dataset's test split:
``python -m train.baselines --data-root DIR [--dataset rgbnt201] [--bins 8] [--out metrics.json]``.

Per triple: a joint RGB colour histogram of the RGB image (``bins/2`` levels per channel, 64 bins at
the default ``bins=8``; on the synthetic benchmark it beats joint HSV, whose hue is noise on greyish
pixels) and intensity histograms of the NIR and TIR images (``2 * bins`` bins each), each
normalised to sum 1; features are the concatenated square roots (each modality block has unit L2
norm, so the Euclidean distance is a Hellinger / Bhattacharyya-type distance). Ranking metrics use
``signal_core.metrics.evaluate_rank`` with the dataset's protocol (camera, or scene for MSVR310),
exactly as ``train.evaluate`` does for a model. No learning, no spatial information: a reference point
for what global colour statistics alone achieve.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import cv2
import numpy as np
from tqdm.auto import tqdm

from signal_core.data import DATASETS, TripleRecord, load_dataset, load_triple
from signal_core.metrics import RankResult, evaluate_rank
from signal_core.modalities import MODALITIES
from signal_core.utils.atomic import write_json

from .cli import command_main, command_parser
from .flags import input_path, output_file, whole
from .protocol import format_metrics

MAX_BINS = 64  # (bins/2)^3 joint RGB bins: 32768 at 64


def histogram_features(rgb: np.ndarray, nir: np.ndarray, tir: np.ndarray, bins: int = 8,
                       modalities: Sequence[str] = MODALITIES) -> np.ndarray:
    """Square-rooted normalised histograms of one triple (uint8 RGB ``[H,W,3]``, grey ``[H,W]``), concatenated.

    Each included modality contributes a block of unit L2 norm; the result is divided by
    ``sqrt(len(modalities))`` so the whole vector has unit norm.
    """
    blocks = []
    for name in modalities:
        if name == "rgb":
            per = max(2, bins // 2)
            hist = cv2.calcHist([np.ascontiguousarray(rgb)], [0, 1, 2], None, [per] * 3, [0, 256] * 3).ravel()
        elif name in ("nir", "tir"):
            img = np.ascontiguousarray(nir if name == "nir" else tir)
            hist = cv2.calcHist([img], [0], None, [2 * bins], [0, 256]).ravel()
        else:
            raise ValueError(f"unknown modality {name!r}; choose from {MODALITIES}")
        blocks.append(np.sqrt(hist / max(float(hist.sum()), 1.0)))
    return (np.concatenate(blocks) / np.sqrt(len(blocks))).astype(np.float32)


def _field(records: Sequence[TripleRecord], attr: str) -> np.ndarray:
    """``[N]`` array of one label field (pid, camid, sceneid) of the records."""
    return np.array([getattr(r, attr) for r in records])


def _grey(img) -> np.ndarray:
    return cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2GRAY)


def record_features(records: Sequence[TripleRecord], bins: int = 8,
                    modalities: Sequence[str] = MODALITIES, progress: bool = False) -> np.ndarray:
    """``[N, D]`` histogram features of the records (images read with the datasets' own loader)."""
    feats = []
    for r in tqdm(records, desc="histograms", disable=not progress, leave=False):
        rgb, nir, tir = load_triple(r.paths)
        feats.append(histogram_features(np.asarray(rgb), _grey(nir), _grey(tir), bins, modalities))
    return np.stack(feats)


def evaluate_histograms(dataset, bins: int = 8, modalities: Sequence[str] = MODALITIES,
                        progress: bool = False) -> RankResult:
    """Histogram baseline on ``dataset.query`` vs ``dataset.gallery`` with the dataset's protocol."""
    qf = record_features(dataset.query, bins, modalities, progress)
    same = dataset.gallery is dataset.query or [r.paths for r in dataset.gallery] == [r.paths for r in dataset.query]
    gf = qf if same else record_features(dataset.gallery, bins, modalities, progress)
    sq = (qf * qf).sum(1)[:, None] + (gf * gf).sum(1)[None, :] - 2.0 * qf @ gf.T
    dist = np.sqrt(np.maximum(sq, 0.0))
    q, g = dataset.query, dataset.gallery
    scenes = ((_field(q, "sceneid"), _field(g, "sceneid"))
              if (_field(q, "sceneid") >= 0).all() and (_field(g, "sceneid") >= 0).all() else (None, None))
    return evaluate_rank(dist, _field(q, "pid"), _field(g, "pid"), _field(q, "camid"), _field(g, "camid"), *scenes)


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m train.baselines", __doc__.split("\n")[0])
    p.add_argument("--data-root", required=True, type=input_path, help="the dataset folder itself")
    p.add_argument("--dataset", default="rgbnt201", choices=DATASETS)
    p.add_argument("--bins", type=whole(2, MAX_BINS), default=8,
                   help="RGB: bins/2 levels per channel (joint); NIR / TIR: 2*bins intensity bins")
    p.add_argument("--modalities", default="rgb,nir,tir", help="comma-separated subset of rgb,nir,tir")
    p.add_argument("--out", type=output_file, help="write the metrics as JSON to this file")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    modalities = [m.strip().lower() for m in args.modalities.split(",") if m.strip()]
    if not modalities or any(m not in MODALITIES for m in modalities):
        raise ValueError(f"--modalities must be a comma-separated subset of {','.join(MODALITIES)}")
    dataset = load_dataset(args.dataset, args.data_root)
    result = evaluate_histograms(dataset, args.bins, modalities, progress=not args.no_progress)
    metrics = result.as_percent_dict()
    print(f"{dataset.name} test, colour histograms ({'+'.join(modalities)}, {args.bins} bins), "
          f"{result.num_valid_queries} queries:\n{format_metrics(metrics)}")
    if args.out:
        write_json(args.out, metrics)
    return metrics


def main(argv=None) -> int:
    return command_main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
