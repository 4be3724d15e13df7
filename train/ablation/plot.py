"""A sweep's plot (``<grid>.png`` beside ``ablation.md``): mAP per point, mean over seeds with its 95 % band
(mean +- t_{0.975, n-1} x std / sqrt(n), the interval of the mean), one curve per series; the paper's
reported points (paper.py) as stars on a right-hand axis of their own, since they were measured on
RGBNT201 with ViT-B/16 and only their position along the sweep compares."""
from __future__ import annotations

import math
from pathlib import Path

from signal_core.utils.atomic import atomic_write

from .stats import mean_std, t_quantile_975


def band(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) of the 95 % t interval of the mean of ``values`` (low = high = mean below two)."""
    mean, std = mean_std(values)
    if len(values) < 2:
        return mean, mean, mean
    half = t_quantile_975(len(values) - 1) * std / math.sqrt(len(values))
    return mean, mean - half, mean + half


def sweep_points(summary: dict, metric: str = "mAP") -> list[dict]:
    """Per series: its label, x label and, per point with results, (x, mean, low, high, n, paper value or None)."""
    out = []
    for series in summary["series"]:
        points = []
        for key, x in series["points"]:
            row = summary["rows"].get(key)
            values = [c["metrics"][metric] for c in row["seeds"].values()] if row else []
            if values:
                paper = row["paper"][metric] if row["paper"] else None
                points.append((x, *band(values), len(values), paper))
        out.append({"label": series["label"], "x_label": series["x_label"], "points": points})
    return out


def write_sweep_plot(summary: dict, path: Path, metric: str = "mAP") -> Path:
    """Draw the sweep of ``summary`` (summary.summarise) into ``path`` (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = sweep_points(summary, metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    paper_ax = None
    for i, curve in enumerate(curves):
        colour = f"C{i}"
        if not curve["points"]:
            continue
        xs, means, lows, highs, _, papers = zip(*curve["points"])
        ax.plot(xs, means, "o-", color=colour, label=f"{curve['label']}: ours, mean")
        ax.fill_between(xs, lows, highs, color=colour, alpha=0.2, label=f"{curve['label']}: 95 % band")
        marks = [(x, p) for x, p in zip(xs, papers) if p is not None]
        if marks:
            paper_ax = paper_ax or ax.twinx()
            paper_ax.plot(*zip(*marks), "*", color=colour, markersize=14, markeredgecolor="black",
                          label=f"{curve['label']}: paper (RGBNT201)")
    ax.set_xlabel(curves[0]["x_label"] if curves else "")
    ax.set_ylabel(f"{metric} here (%)")
    ax.set_title(f"{summary['title']}\n{len(summary['seeds'])} seeds, protocol: {summary['protocol']}", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    if paper_ax is not None:
        paper_ax.set_ylabel(f"paper {metric} (%)")
        low, high = paper_ax.get_ylim()  # the stars off the frame's edges
        pad = max(0.5, 0.25 * (high - low))
        paper_ax.set_ylim(low - pad, high + pad)
        more = paper_ax.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    # below the axes, where it hides no point or band
    ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)
