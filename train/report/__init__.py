"""The evaluation report: metrics, the missing-modality table and the paper's figures for any model.

``write_report(model, dataset, out_dir)`` writes into ``out_dir``:

* ``metrics.json``: mAP, mINP, R1, R5, R10 of the full triples (percent, the keys of
  ``train.evaluate``'s JSON; equal to a plain evaluation) and ``"missing"``: the same five metrics
  for every setting of :data:`.features.SETTINGS` (``"none"``, ``"rgb"``, ..., ``"nir+tir"``: the key
  names what is zeroed), plus ``"similarity"`` (positive / negative cosine statistics);
* ``index.html`` (readable offline) showing the tables and the figures, each a PNG beside it:
  ``cmc.png``, ``ranklist_NN.png``, ``tsne.png`` (paper Fig. 6), ``similarity.png`` (Fig. 7),
  ``selection.png`` (Fig. 8), ``lam.png`` (Fig. 9), ``registration.png`` when the model registers
  NIR / TIR to RGB (``cfg.registration`` not ``"none"``: edges before / after and the displacement
  found), and ``training.png`` when a ``history.jsonl`` is given.

Command line: ``python -m train.report --config ... --data-root ... --weights ... --out DIR``.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from signal_core import SignalModel
from signal_core.data import ReIDDataset
from signal_core.utils.atomic import atomic_write, write_json

from . import figures
from .features import SETTINGS, SettingResult, evaluate_all_settings
from .page import render_page

__all__ = ["Report", "SETTINGS", "check_report_folder", "write_report"]
TITLE = "Signal evaluation report"  # the page's title; an index.html holding it is a report's


@dataclass
class Report:
    """What :func:`write_report` wrote."""

    metrics: dict  # the content of metrics.json
    files: list[Path]  # index.html, metrics.json and every PNG
    seconds: float
    timings: dict[str, float]  # wall seconds per stage


def write_report(model: SignalModel, dataset: ReIDDataset, out_dir: str | Path, device: torch.device | str = "cpu",
                 batch_size: int = 128, num_workers: int = 0, history: str | Path | None = None, seed: int = 0,
                 num_ranklists: int = 6, num_tsne_ids: int = 10, num_explained: int = 4,
                 meta: Mapping[str, str] | None = None, progress: bool = True, features_fn=None,
                 extra_metrics: Mapping[str, object] | None = None) -> Report:
    """Evaluate ``model`` on ``dataset``'s test split under every missing-modality setting and write the
    report into ``out_dir`` (created; the files of an earlier report there are replaced, another
    ``index.html`` or ``metrics.json`` is refused: :func:`check_report_folder`).

    Args:
        history: a run folder's ``history.jsonl``: adds the training curves.
        seed: seeds the samples (rank-list queries, t-SNE identities, explained triples).
        meta: extra label -> value lines for the page's header (weights, config, command...).
        features_fn: a feature engine (signal_core.deploy.engines) for every feature behind the metrics,
            rankings and similarity figures; the drawings of SIM / LAM still use ``model``.
        extra_metrics: more top-level entries of metrics.json (e.g. ``"lam_offsets"``, train/offsets.py).
    """
    start = time.perf_counter()
    out = Path(out_dir)
    check_report_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    timings: dict[str, float] = {}
    results = _Clock(timings)("features and ranking", evaluate_all_settings, model, dataset, device, batch_size,
                              num_workers, progress, features_fn)
    missing = {name: r.result.as_percent_dict() for name, r in results.items()}
    figs, sim_stats = _write_figures(model, dataset, results, out, device, history, seed, num_ranklists,
                                     num_tsne_ids, num_explained, timings)
    metrics = {**missing["none"], "missing": missing, "similarity": dataclasses.asdict(sim_stats),
               **(extra_metrics or {})}
    files = [write_json(out / "metrics.json", metrics)]
    seconds = time.perf_counter() - start
    info = {"queries / gallery": f"{len(dataset.query)} / {len(dataset.gallery)} triples "
                                 f"({results['none'].result.num_valid_queries} queries with a valid match)",
            "precision": model.inference_precision, **(meta or {}),
            "time": f"{seconds:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ")"}
    page = render_page(TITLE, info, missing["none"], missing, figs)
    files.append(atomic_write(out / "index.html", lambda tmp: Path(tmp).write_text(page, encoding="utf-8")))
    files += [out / f for _, names in figs for f in names]
    return Report(metrics, files, seconds, timings)


def check_report_folder(out: Path) -> None:
    """A report replaces the files of an earlier report in ``out``, never a page or metrics of another kind.

    Raises:
        FileExistsError: ``out`` holds an ``index.html`` that is not a Signal report, or a
            ``metrics.json`` without one (a training run's folder, say).
    """
    index, metrics = out / "index.html", out / "metrics.json"
    ours = index.is_file() and TITLE in index.read_text(encoding="utf-8", errors="replace")[:4096]
    if (index.exists() and not ours) or (metrics.exists() and not index.exists()):
        name = "index.html" if index.exists() else "metrics.json"
        raise FileExistsError(f"'{out}' holds {name}, which is not from a Signal report and which the report would "
                              "replace: choose another folder for the report.")


def _write_figures(model, dataset, results: dict[str, SettingResult], out: Path, device, history, seed: int,
                   num_ranklists: int, num_tsne_ids: int, num_explained: int, timings: dict[str, float]):
    """Every figure; returns [(Figure, [png names])] in page order and the similarity statistics."""
    full = results["none"]
    clock = _Clock(timings)
    fig = clock("cmc", figures.write_cmc, results, out)
    figs = [(fig, [fig.file])]
    queries = figures.sample_queries(full, max(num_ranklists, num_explained), seed)
    shown = queries[:num_ranklists]
    fig = clock("rank lists", figures.write_ranklists, full, dataset.query, dataset.gallery, shown, out,
                tuple(model.cfg.image_size))
    figs.append((fig, [f"ranklist_{n:02d}.png" for n in range(1, len(shown) + 1)]))
    fig = clock("t-SNE", figures.write_tsne, full.gallery, out, num_tsne_ids, seed)
    figs.append((fig, [fig.file]))
    fig, sim_stats = clock("similarity", figures.write_similarity, full, out, seed)
    figs.append((fig, [fig.file]))
    records = [dataset.query[i] for i in queries[:num_explained]]
    if records:
        explanation = clock("explain", figures.explain_records, model, records, device)
        if explanation["rgb"].final is not None:
            fig = clock("selection", figures.write_selection, model, records, explanation, out)
            figs.append((fig, [fig.file]))
        if explanation["rgb"].sampled_positions is not None:
            fig = clock("LAM", figures.write_sampling, model, records, explanation, out)
            figs.append((fig, [fig.file]))
        if explanation["nir"].displacement is not None:  # the model registers NIR / TIR to RGB
            fig = clock("registration", figures.write_registration, model, records, explanation, out)
            figs.append((fig, [fig.file]))
    if history is not None and Path(history).is_file():
        fig = clock("training curves", figures.write_training_curves, Path(history), out)
        if fig is not None:
            figs.append((fig, [fig.file]))
    return figs, sim_stats


class _Clock:
    """Calls a function and adds its wall time to ``timings[name]``."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    def __call__(self, name: str, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
