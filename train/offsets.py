"""Offset tracking: do LAM's sampling offsets follow the NIR / TIR shift injected by the generator?

Per test triple, the mean LAM offset of each modality (over its sampling points, in pixels of the
model input, (x, y)) is compared with the true shift that ``train.synthetic`` recorded in
``synthetic.json`` (``nir_shift`` / ``tir_shift``: where the content at the RGB frame's centre lies in
the NIR / TIR frame; RGB is the reference, shift 0). To sample the same content as RGB, a modality
shifted by +t must sample t further on, so its offset RELATIVE TO RGB's (NIR offset - RGB offset)
should follow t with slope 1. Reported per modality, over x and y (each axis centred): Pearson r and the
least-squares slope of the relative offset on the true shift, the same for the absolute offset, and
the mean offset and shift lengths.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from signal_core import SignalModel, build_model
from signal_core.data import TripleDataset, TripleRecord, build_transforms
from signal_core.modalities import MODALITIES
from signal_core.viz.overlays import grid_to_pixels

SPLIT_FOLDER = "test"  # the test split's folder in the RGBNT201 layout (train.synthetic writes it)


def true_shifts(data_root: str | Path, records: Sequence[TripleRecord]) -> np.ndarray:
    """[N, 3, 2] true (x, y) pixel shift of each record's RGB / NIR / TIR (RGB 0) from ``synthetic.json``.

    Raises:
        ValueError: the folder holds no ``synthetic.json`` (not a generated benchmark), or a record is
            not in it.
    """
    path = Path(data_root) / "synthetic.json"
    if not path.is_file():
        raise ValueError("offset tracking needs a generated benchmark (python -m train.synthetic): "
                         "its synthetic.json holds the true shifts; the data root has none.")
    frames = json.loads(path.read_text())["frames"]
    out = np.zeros((len(records), 3, 2))
    for i, record in enumerate(records):
        meta = frames.get(f"{SPLIT_FOLDER}/{Path(record.paths[0]).name}")
        if meta is None:
            raise ValueError(f"{Path(record.paths[0]).name} is not a test image of this synthetic.json.")
        out[i, 1], out[i, 2] = meta["nir_shift"], meta["tir_shift"]
    return out


@torch.no_grad()
def predicted_offsets(model: SignalModel, records: Sequence[TripleRecord], device: torch.device | str = "cpu",
                      batch_size: int = 64) -> np.ndarray:
    """[N, 3, 2] mean LAM offset (x, y) per modality in pixels of the model input (sampled position
    minus reference point, averaged over the sampling points)."""
    if model.lam is None:
        raise ValueError("the model has no LAM (use_lam=False): there are no offsets to track.")
    size, grid = tuple(model.cfg.image_size), tuple(model.cfg.grid_size)
    loader = DataLoader(TripleDataset(records, build_transforms(size, train=False)), batch_size=batch_size)
    model = model.to(device)
    out = []
    for batch in loader:
        e = model.explain(*(batch[m].to(device) for m in MODALITIES), cam_ids=batch["camid"].to(device))
        ref = grid_to_pixels(e.rgb.reference_points.cpu().numpy(), grid, size)  # [K, 2]
        per = [grid_to_pixels(e[m].sampled_positions.cpu().numpy(), grid, size) - ref for m in MODALITIES]
        out.append(np.stack([p.mean(axis=1) for p in per], axis=1))  # [b, 3, 2]
    return np.concatenate(out) if out else np.zeros((0, 3, 2))


def fit(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Pearson r and least-squares slope of ``predicted`` on ``true``, both [N, 2] (x, y), each axis
    centred on its own mean before pooling (a constant bias per axis is no tracking), plus r and slope per axis.
    NaN where a variance is zero."""
    x, y = np.asarray(true, float).reshape(-1, 2), np.asarray(predicted, float).reshape(-1, 2)
    out = {"r": _r(x - x.mean(0), y - y.mean(0)), "slope": float("nan"), "n": int(len(x))}
    xc, yc = x - x.mean(0), y - y.mean(0)
    if (xc ** 2).sum() > 1e-12:
        out["slope"] = float((xc * yc).sum() / (xc ** 2).sum())
    out["r_x"], out["r_y"] = _r(xc[:, 0], yc[:, 0]), _r(xc[:, 1], yc[:, 1])
    for axis, name in enumerate("xy"):
        var = (xc[:, axis] ** 2).sum()
        out[f"slope_{name}"] = float((xc[:, axis] * yc[:, axis]).sum() / var) if var > 1e-12 else float("nan")
    return out


def _r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two centred arrays (flattened); NaN when either is constant."""
    a, b = a.ravel(), b.ravel()
    den = np.sqrt((a ** 2).sum() * (b ** 2).sum())
    return float((a * b).sum() / den) if a.size > 1 and den > 1e-12 else float("nan")


def tracking_summary(predicted: np.ndarray, true: np.ndarray) -> dict[str, dict]:
    """Per modality: ``relative`` (offset - RGB's) and ``absolute`` fits against the true shift, and the
    mean offset / shift lengths in pixels. ``predicted`` and ``true`` are [N, 3, 2]."""
    out: dict[str, dict] = {}
    for i, name in enumerate(MODALITIES):
        entry = {"mean_offset_px": round(float(np.hypot(*predicted[:, i].T).mean()), 4) if len(predicted) else 0.0}
        if i > 0:
            entry["mean_shift_px"] = round(float(np.hypot(*true[:, i].T).mean()), 4) if len(true) else 0.0
            entry["relative"] = fit(predicted[:, i] - predicted[:, 0], true[:, i])
            entry["absolute"] = fit(predicted[:, i], true[:, i])
        out[name] = entry
    return out


def offset_tracking(model: SignalModel, records: Sequence[TripleRecord], data_root: str | Path,
                    device: torch.device | str = "cpu", batch_size: int = 64) -> dict[str, dict]:
    """:func:`tracking_summary` of ``model``'s LAM offsets on ``records`` (test triples of a generated benchmark)."""
    return tracking_summary(predicted_offsets(model, records, device, batch_size), true_shifts(data_root, records))


def lam_tracking(model: SignalModel, dataset, data_root: str | Path, device: torch.device | str = "cpu",
                 untrained_seed: int | None = None) -> dict | None:
    """Offset tracking for the report: None unless ``model`` has LAM and ``data_root`` is a generated
    benchmark (``synthetic.json``); else {"model": :func:`offset_tracking` on the test split, and with
    ``untrained_seed`` "untrained": the same of the same architecture at its initialisation under that
    seed (as ``python -m train`` builds it)}."""
    if model.lam is None or not (Path(data_root) / "synthetic.json").is_file():
        return None
    out = {"model": offset_tracking(model, dataset.query, data_root, device)}
    if untrained_seed is not None:
        torch.manual_seed(untrained_seed)
        fresh = build_model(model.cfg.replace(pretrained=None))
        out["untrained"] = offset_tracking(fresh, dataset.query, data_root, device)
    return out


def format_tracking(summary: dict[str, dict], label: str = "") -> str:
    """One line per shifted modality: r and slope of the relative offset, mean lengths."""
    lines = []
    for name in MODALITIES[1:]:
        e = summary[name]
        rel = e["relative"]
        lines.append(f"{label}{name.upper()}: offset - RGB offset vs true shift "
                     f"r {rel['r']:.3f}, slope {rel['slope']:.3f} "
                     f"(mean offset {e['mean_offset_px']:.2f} px, mean shift {e['mean_shift_px']:.2f} px)")
    return "\n".join(lines)
