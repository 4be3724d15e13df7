"""The report's figures, each written as a PNG into the report folder.

Every ``write_*`` function returns a :class:`Figure` record (file name, title, caption) for the page.
Samples (rank-list queries, t-SNE identities, explained triples) are drawn with a seeded generator,
so the same model and data give the same figures.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from signal_core import SignalModel
from signal_core.data import TripleRecord, build_transforms, load_triple
from signal_core.modalities import LABELS, MODALITIES
from signal_core.retrieval.split_features import DatasetFeatures
from signal_core.utils.atomic import atomic_write
from signal_core.viz import (
    RankedTriple,
    explanation_overlay,
    lam_arrow_scale,
    offset_pixels,
    plots,
    ranklist_image,
    reference_panel,
    registration_panels,
)
from signal_core.viz.overlays import MAX_OFFSET_SCALE, overlay_size, resize_for_overlay

from ..run_folder import read_history_file
from .features import SettingResult, cosine_similarity, excluded_pairs

MAX_NEGATIVES = 2_000_000  # similarity histogram: negatives sampled beyond this many pairs


@dataclass
class Figure:
    """One figure of the page."""

    file: str  # PNG name inside the report folder
    title: str
    caption: str


def write_png(array: np.ndarray, path: Path) -> Path:
    """Write a [H, W, 3] uint8 array as a PNG, atomically."""
    return atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG", optimize=True),
                        suffix=".png")


def write_cmc(results: dict[str, SettingResult], out_dir: Path) -> Figure:
    curves = {name: r.result.cmc for name, r in results.items()}
    plots.save_figure(plots.cmc_figure(curves, max_rank=min(20, len(curves["none"])), highlight="none"),
                      out_dir / "cmc.png")
    return Figure("cmc.png", "CMC curves",
                  "Rank-k matching rate of the full triples (black) and with one or two modalities zeroed.")


def write_tsne(feats: DatasetFeatures, out_dir: Path, num_ids: int, seed: int) -> Figure:
    """Paper Fig. 6: t-SNE of the features of ``num_ids`` identities sampled with ``seed``."""
    pids = feats.pids.numpy()
    ids, counts = np.unique(pids, return_counts=True)
    ids = ids[counts >= 2]
    chosen = np.sort(np.random.default_rng(seed).choice(ids, size=min(num_ids, len(ids)), replace=False))
    sel = np.isin(pids, chosen)
    points = plots.tsne_embedding(feats.feats[sel].numpy(), seed=seed)
    fig = plots.tsne_figure(points, pids[sel], feats.camids.numpy()[sel],
                            title=f"t-SNE of {int(sel.sum())} gallery features of {len(chosen)} identities\n"
                                  "(colour = identity, marker = camera)")
    plots.save_figure(fig, out_dir / "tsne.png")
    return Figure("tsne.png", "t-SNE of the features (paper Fig. 6)",
                  f"Gallery features of {len(chosen)} identities drawn at random (seed {seed}); colour = "
                  "identity, marker = camera. Tight single-colour clusters mean camera-invariant features.")


def similarity_pairs(result: SettingResult, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of the positive pairs (same identity, kept by the protocol) and of the
    negative pairs (other identities; a random sample of ``MAX_NEGATIVES`` when there are more)."""
    sims = cosine_similarity(result.query, result.gallery)  # [Q, G]
    same = result.query.pids.numpy()[:, None] == result.gallery.pids.numpy()[None, :]
    positive = sims[same & ~excluded_pairs(result.query, result.gallery)]
    negative = sims[~same]
    if len(negative) > MAX_NEGATIVES:
        negative = np.random.default_rng(seed).choice(negative, MAX_NEGATIVES, replace=False)
    return positive, negative


def write_similarity(result: SettingResult, out_dir: Path, seed: int) -> tuple[Figure, plots.SimilarityStats]:
    """Paper Fig. 7: distributions of the cosine similarity of positive and negative pairs."""
    positive, negative = similarity_pairs(result, seed)
    plots.save_figure(plots.similarity_figure(positive, negative), out_dir / "similarity.png")
    stats = plots.similarity_stats(positive, negative)
    return Figure("similarity.png", "Cosine similarity of positive and negative pairs (paper Fig. 7)",
                  "Query-gallery pairs of the full setting; positives exclude the pairs the protocol discards "
                  f"(same identity and camera). Overlap of the normalised histograms: {100 * stats.overlap:.1f} % "
                  "(smaller is better)."), stats


def display_images(record: TripleRecord, tile_hw: tuple[int, int]) -> list[np.ndarray]:
    """The record's RGB, NIR, TIR images resized to ``tile_hw`` (H, W) as uint8 arrays."""
    h, w = tile_hw
    return [np.asarray(im.resize((w, h), Image.Resampling.BILINEAR)) for im in load_triple(record.paths)]


def sample_queries(result: SettingResult, num: int, seed: int) -> list[int]:
    """``num`` query indices (sorted) drawn with ``seed`` among queries with a valid match."""
    same = result.query.pids.numpy()[:, None] == result.gallery.pids.numpy()[None, :]
    valid = np.flatnonzero((same & ~excluded_pairs(result.query, result.gallery)).any(axis=1))
    return sorted(np.random.default_rng(seed).choice(valid, size=min(num, len(valid)), replace=False).tolist())


def write_ranklists(result: SettingResult, queries: Sequence[TripleRecord], gallery: Sequence[TripleRecord],
                    indices: Sequence[int], out_dir: Path, image_size: tuple[int, int], top_k: int = 10) -> Figure:
    """Rank lists of the given queries (one PNG each, ``ranklist_NN.png``); the Figure names the first."""
    sims = cosine_similarity(result.query, result.gallery)
    excluded = excluded_pairs(result.query, result.gallery)
    h = min(image_size[0], 128)
    tile = (h, max(1, round(image_size[1] * h / image_size[0])))
    files = []
    for n, qi in enumerate(indices, start=1):
        row = np.where(excluded[qi], -np.inf, sims[qi])
        order = np.argsort(-row, kind="stable")[:top_k]
        order = order[np.isfinite(row[order])]
        q = queries[qi]
        items = [RankedTriple(display_images(gallery[g], tile), gallery[g].pid, gallery[g].camid, rank, float(row[g]),
                              gallery[g].pid == q.pid) for rank, g in enumerate(order.tolist(), start=1)]
        query = RankedTriple(display_images(q, tile), q.pid, q.camid)
        hits = sum(i.is_match for i in items)
        image = ranklist_image(query, items, tile, title=f"query {qi} (id {q.pid}, camera {q.camid + 1}): "
                                                         f"{hits} of the top {len(items)} are the same identity")
        files.append(f"ranklist_{n:02d}.png")
        write_png(image, out_dir / files[-1])
    return Figure(files[0] if files else "", "Rank lists",
                  f"{len(files)} queries drawn at random; top {top_k} of the gallery (the protocol's discarded "
                  "items left out), green border = same identity, red = another; cosine similarity above each.")


@torch.no_grad()
def explain_records(model: SignalModel, records: Sequence[TripleRecord], device: torch.device):
    """``model.explain`` of the records (test transform, with their cameras)."""
    transform = build_transforms(model.cfg.image_size, train=False)
    tensors = [transform(load_triple(r.paths)) for r in records]
    rgb, nir, tir = (torch.stack([t[i] for t in tensors]).to(device) for i in range(3))
    cams = torch.tensor([r.camid for r in records], device=device)
    return model.explain(rgb, nir, tir, cams)


def write_selection(model: SignalModel, records: Sequence[TripleRecord], explanation, out_dir: Path) -> Figure:
    """Paper Fig. 8: per modality, the image and the tokens SIM kept (removed patches black)."""
    size, grid = tuple(model.cfg.image_size), tuple(model.cfg.grid_size)
    canvas = overlay_size(size)
    rows, row_titles = [], []
    for b, record in enumerate(records):
        images = display_images(record, size)
        row = []
        for m, name in enumerate(MODALITIES):
            e = explanation[name]
            row.append(resize_for_overlay(images[m], canvas))
            row.append(explanation_overlay(images[m], grid, size, e.intra[b], e.inter[b], e.final[b], removed="black"))
        rows.append(row)
        row_titles.append(f"id {record.pid} cam {record.camid + 1}")
    kept = int(explanation["rgb"].final[0].sum())
    titles = [t for label in (LABELS[m] for m in MODALITIES) for t in (label, f"{label}: SIM kept")]
    fig = plots.image_grid_figure(rows, titles, row_titles, title=f"SIM token selection: {kept} of "
                                  f"{grid[0] * grid[1]} patches kept per modality; removed patches black")
    plots.save_figure(fig, out_dir / "selection.png")
    return Figure("selection.png", "SIM token selection (paper Fig. 8)",
                  "Tokens SIM passed on per modality, tinted by why: green = intra-modal selection (the modality's "
                  "own class token), blue = inter-modal selection (the other modalities), amber = both; removed "
                  "patches black.")


def write_sampling(model: SignalModel, records: Sequence[TripleRecord], explanation, out_dir: Path) -> Figure:
    """Paper Fig. 9: LAM's reference points and sampled positions in the three modalities, arrows scaled
    per modality (the factor is in each column's title; 1 with image-level registration, whose displacement
    the positions include)."""
    size, grid = tuple(model.cfg.image_size), tuple(model.cfg.grid_size)
    names = MODALITIES
    ref = explanation["rgb"].reference_points.cpu().numpy()  # [K, 2]
    pos = {m: explanation[m].sampled_positions.cpu().numpy() for m in names}  # [B, K, 2] each
    registered = model.cfg.registration != "none"
    scale = {m: lam_arrow_scale(ref, pos[m], grid, size, registered) for m in names}
    offsets = {m: offset_pixels(ref, pos[m], grid, size) for m in names}  # [B, K] input-image pixels
    rows = []
    for b, record in enumerate(records):
        images = display_images(record, size)
        rows.append([explanation_overlay(images[i], grid, size, reference=ref, positions=pos[m][b],
                                         offset_scale=scale[m]) for i, m in enumerate(names)])
    titles = [f"{label}: arrows x{scale[m]:g}\nmean offset {offsets[m].mean():.2f} px"
              for label, m in zip((LABELS[m] for m in names), names)]
    fig = plots.image_grid_figure(rows, titles, [f"id {r.pid} cam {r.camid + 1}" for r in records], panel_width=1.9,
                                  title=f"LAM: reference points (white) and arrows to the sampled positions (red),\n"
                                        f"lengthened by the factor in each column (offsets in pixels of the "
                                        f"{size[0]} x {size[1]} input)")
    plots.save_figure(fig, out_dir / "lam.png")
    scales = ", ".join(f"{label} x{scale[m]:g}" for label, m in zip((LABELS[m] for m in names), names))
    means = ", ".join(f"{label} {offsets[m].mean():.2f}" for label, m in zip((LABELS[m] for m in names), names))
    drawn = (f"at their true length (registration {model.cfg.registration}: the positions include the displacement "
             "it found, drawn on its own in the registration figure)" if registered else
             f"lengthened by at most x{MAX_OFFSET_SCALE:g} ({scales}): offsets still shorter than a pixel mean LAM "
             "moved little")
    return Figure("lam.png", "LAM reference points and sampled positions (paper Fig. 9)",
                  f"White dots: LAM's reference points; red arrows: to where each modality sampled, {drawn}. "
                  f"Mean real offsets in pixels of the {size[0]} x {size[1]} model input: {means}.")


def write_registration(model: SignalModel, records: Sequence[TripleRecord], explanation, out_dir: Path) -> Figure:
    """What image-level registration did (``model.cfg.registration``), drawn as the demo's registration view
    (:mod:`signal_core.viz.registration`): per record, RGB's edges, then NIR's and TIR's edges over RGB's
    before (with the displacement found, at its true length) and after registration."""
    size = tuple(model.cfg.image_size)
    canvas = overlay_size(size)
    moved = MODALITIES[1:]  # NIR, TIR: registered to RGB
    shifts = {m: explanation[m].displacement.cpu().numpy() for m in moved}  # [B, 2] (x, y) input pixels
    rows = []
    for b, record in enumerate(records):
        images = [resize_for_overlay(image, canvas) for image in display_images(record, size)]
        rows.append([reference_panel(images[0])] + [registration_panels(images[0], images[i], shifts[m][b], size,
                                                                        LABELS[m]) for i, m in enumerate(moved, 1)])
    lengths = {m: float(np.linalg.norm(shifts[m], axis=1).mean()) for m in moved}
    titles = [f"{LABELS[MODALITIES[0]]}: the reference"] + [
        f"{LABELS[m]}: before | registered\nmean |displacement| {lengths[m]:.2f} px" for m in moved]
    fig = plots.image_grid_figure(rows, titles, [f"id {r.pid} cam {r.camid + 1}" for r in records], panel_width=1.9,
                                  title=f"Registration ({model.cfg.registration}): NIR / TIR edges (magenta) over "
                                        f"RGB's (green), white where they meet;\nthe displacement found (yellow) at "
                                        f"its true length, in pixels of the {size[0]} x {size[1]} input")
    plots.save_figure(fig, out_dir / "registration.png")
    found = ", ".join(f"{LABELS[m]} {lengths[m]:.2f} px" for m in moved)
    return Figure("registration.png", f"Image-level registration ({model.cfg.registration})",
                  f"Per triple, RGB's edges (green) and NIR's / TIR's (magenta), white where they meet: before "
                  f"registration, with an arrow (yellow) of the displacement it found at its true length (x1), and "
                  f"after it, the modality moved by that displacement as the encoder sees it. Mean |displacement| "
                  f"found over the {len(records)} triples, in pixels of the {size[0]} x {size[1]} model input: "
                  f"{found}.")


def write_training_curves(history_path: Path, out_dir: Path) -> Figure | None:
    """Losses (and any test metrics) per epoch from a run folder's ``history.jsonl``; None if empty."""
    records, bad = read_history_file(history_path)
    if not records:
        return None
    plots.save_figure(plots.training_curves_figure(records), out_dir / "training.png")
    skipped = f" ({bad} unreadable lines skipped)" if bad else ""
    return Figure("training.png", "Training curves",
                  f"Per-epoch losses (and test metrics where logged) from {history_path.name}, "
                  f"{len(records)} epochs{skipped}.")
