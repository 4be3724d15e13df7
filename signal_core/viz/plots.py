"""Matplotlib figures of an evaluation: CMC curves, t-SNE of features, cosine-similarity histograms,
training curves, and image grids (token selection, LAM sampling).

matplotlib and scikit-learn are optional (``pip install matplotlib scikit-learn``): they are imported
inside the functions, and the figures are built with ``matplotlib.figure.Figure`` (no pyplot, no
global state, safe in threads). Every function returns the Figure; :func:`save_figure` writes a PNG.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils.atomic import atomic_write

METRIC_NAMES = ("mAP", "mINP", "R1", "R5", "R10")


def _figure(width: float, height: float):
    """A new matplotlib Figure (inches), without pyplot."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the report's figures need matplotlib: pip install 'matplotlib>=3.7'") from exc
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG, atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), suffix=".png")


def cmc_figure(curves: Mapping[str, np.ndarray], max_rank: int = 20, highlight: str | None = None):
    """CMC curves (rank-k accuracy in percent against k), one line per named setting.

    Args:
        curves: name -> cmc fractions (``cmc[k - 1]`` = rank-k accuracy).
        highlight: the name drawn thick and black (e.g. the full setting).
    """
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    for name, cmc in curves.items():
        k = np.arange(1, min(max_rank, len(cmc)) + 1)
        thick = name == highlight
        ax.plot(k, 100 * np.asarray(cmc)[: len(k)], marker="o" if thick else None, markersize=3,
                lw=2.5 if thick else 1.3, color="black" if thick else None, label=name, zorder=3 if thick else 2)
    ax.set_xlabel("rank k")
    ax.set_ylabel("matching rate at rank k (%)")
    ax.set_title("CMC curve")
    ax.set_xlim(1, max_rank)
    ax.set_xticks([1, *range(5, max_rank + 1, 5)])
    ax.grid(alpha=0.3)
    ax.legend(title="zeroed modality", fontsize=8, title_fontsize=8, loc="lower right")
    return fig


def tsne_embedding(features: np.ndarray, seed: int = 0, perplexity: float = 15.0) -> np.ndarray:
    """[N, 2] t-SNE (scikit-learn, PCA init, cosine metric) of [N, F] features."""
    try:
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the t-SNE figure needs scikit-learn: pip install 'scikit-learn>=1.3'") from exc
    n = len(features)
    perplexity = float(min(perplexity, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", metric="cosine", random_state=seed)
    # One thread: for a few hundred points OpenMP only adds overhead, and on a busy machine its
    # spinning threads made an 80-point embedding take 79 s instead of 1.6 s.
    with threadpool_limits(1):
        return tsne.fit_transform(np.asarray(features, dtype=np.float32))


def tsne_figure(points: np.ndarray, pids: Sequence[int], camids: Sequence[int] | None = None, title: str = ""):
    """Scatter of 2-D points coloured by identity (marker shape by camera when given)."""
    fig = _figure(6.4, 5.2)
    ax = fig.add_subplot()
    pids, ids = np.asarray(pids), sorted(set(np.asarray(pids).tolist()))
    cmap = _cmap("tab10" if len(ids) <= 10 else "tab20")
    markers = "o^sDvP*Xh<>p"
    cams = np.zeros(len(pids), dtype=int) if camids is None else np.asarray(camids)
    for i, pid in enumerate(ids):
        for cam in sorted(set(cams[pids == pid].tolist())):
            sel = (pids == pid) & (cams == cam)
            first = cam == cams[pids == pid].min()
            ax.scatter(points[sel, 0], points[sel, 1], s=46, color=cmap(i % cmap.N), marker=markers[cam % len(markers)],
                       edgecolors="black", linewidths=0.4, label=f"id {pid}" if first else None)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "t-SNE of the features")
    ax.legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


@dataclass
class SimilarityStats:
    """Summary of the positive / negative cosine-similarity distributions."""

    positive_mean: float
    negative_mean: float
    overlap: float  # shared area of the two normalised histograms, in [0, 1]
    num_positive: int
    num_negative: int


def similarity_stats(positive: np.ndarray, negative: np.ndarray, bins: int = 100) -> SimilarityStats:
    """Means and histogram overlap (sum over shared bins of min(p, n), both normalised to 1)."""
    lo = float(min(positive.min(), negative.min()))
    hi = float(max(positive.max(), negative.max()))
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    p = np.histogram(positive, edges)[0] / max(1, len(positive))
    n = np.histogram(negative, edges)[0] / max(1, len(negative))
    return SimilarityStats(float(positive.mean()), float(negative.mean()), float(np.minimum(p, n).sum()),
                           len(positive), len(negative))


def similarity_figure(positive: np.ndarray, negative: np.ndarray, bins: int = 100):
    """Histograms (densities) of the cosine similarities of positive and negative pairs, overlap shaded."""
    stats = similarity_stats(positive, negative, bins)
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot()
    lo, hi = float(min(positive.min(), negative.min())), float(max(positive.max(), negative.max()))
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    p, _ = np.histogram(positive, edges, density=True)
    n, _ = np.histogram(negative, edges, density=True)
    ax.stairs(n, edges, fill=True, alpha=0.45, color="tab:red", label=f"negative pairs ({stats.num_negative:,})")
    ax.stairs(p, edges, fill=True, alpha=0.45, color="tab:green", label=f"positive pairs ({stats.num_positive:,})")
    ax.stairs(np.minimum(p, n), edges, fill=True, color="black", alpha=0.55,
              label=f"overlap {100 * stats.overlap:.1f} %")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(f"Positive vs negative pairs: mean {stats.positive_mean:.3f} vs {stats.negative_mean:.3f}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def training_curves_figure(history: Sequence[Mapping]):
    """Losses per epoch (log scale) and, when the records hold any, test (and validation) metrics per epoch.

    ``history`` is the list of ``history.jsonl`` records: ``{"epoch": e, "<loss name>": value, ...,
    "lr": value, "lrs": {group: value}}`` (learning rates are not drawn);
    metric values are found at top level (``mAP``, ``test_mAP``, ``test/mAP``) or in
    a nested dict (``{"test": {"mAP": ...}}``).
    """
    losses, metrics = _history_series(history)
    panels = 1 + bool(metrics)
    fig = _figure(6.0 * panels, 4.0)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for name, (x, y) in sorted(losses.items()):
        axes[0].plot(x, y, marker="o", markersize=3, lw=2.5 if name == "loss" else 1.2,
                     color="black" if name == "loss" else None, label=name)
    axes[0].set_yscale("log")
    axes[0].set_title("training losses per epoch")
    for name, (x, y) in sorted(metrics.items()):
        axes[1].plot(x, y, marker="o", markersize=3, label=name)
    if metrics:
        held_out = any(name.startswith("val") for name in metrics)
        axes[1].set_title(("test and validation" if held_out else "test") + " metrics during training (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def _history_series(history: Sequence[Mapping]) -> tuple[dict, dict]:
    """name -> (epochs, values) for losses and for test metrics (learning rates left out)."""
    losses: dict[str, tuple[list, list]] = {}
    metrics: dict[str, tuple[list, list]] = {}
    for i, record in enumerate(history):
        epoch = record.get("epoch", i + 1)
        for name, value in _flatten(record).items():
            if name == "epoch" or any(part.startswith("lr") for part in name.split("/")) or not _is_number(value):
                continue
            leaf = name.replace("/", "_").split("_")[-1]
            target = metrics if leaf in METRIC_NAMES else losses
            target.setdefault(name, ([], []))
            target[name][0].append(epoch)
            target[name][1].append(float(value))
    return losses, metrics


def _flatten(record: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def image_grid_figure(rows: Sequence[Sequence[np.ndarray]], column_titles: Sequence[str],
                      row_titles: Sequence[str] | None = None, title: str = "", panel_width: float = 1.5):
    """Images in a grid (rows x columns, each [H, W, 3] uint8), with column / row titles.

    Every image of a row has the first image's height; a column is as wide as its first-row image
    (``panel_width`` inches for the first column's width), so a wider panel (before | after) keeps its scale."""
    n_rows, n_cols = len(rows), len(column_titles)
    h, w = rows[0][0].shape[:2]
    ratios = [image.shape[1] / w for image in rows[0]]
    fig = _figure(panel_width * sum(ratios) + 0.6, panel_width * n_rows * h / w + 0.7)
    axes = fig.subplots(n_rows, n_cols, squeeze=False, gridspec_kw={"width_ratios": ratios})
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            ax = axes[r][c]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column_titles[c], fontsize=9)
            if c == 0 and row_titles:
                ax.set_ylabel(row_titles[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _cmap(name: str):
    from matplotlib import colormaps

    return colormaps[name]
