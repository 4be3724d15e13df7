"""Rank a gallery feature folder for every query triple:
``python -m train.search --features FEATS --queries DIR|QFEATS --top-k K --out results.json [--html ranks.html]``.

``--features`` is a feature folder written by ``python -m train.extract``. ``--queries`` is either
another feature folder (extracted with the same weights) or a triples folder, whose features are
computed here with ``--weights`` (the same weights as the gallery: the sha256 is checked) in the
gallery's precision. The gallery is searched through ``signal_core.retrieval.index.GalleryIndex`` (exact
search, or IVF-PQ for large galleries; ``--index auto`` picks by size).

``results.json``::

    {"gallery": ..., "queries": ..., "top_k": K, "index": ..., "model_sha256": ...,
     "results": [{"name", "identity", "camera", "paths",
                  "matches": [{"rank", "name", "score", "identity", "camera", "paths"}, ...]}, ...]}

``identity`` and ``camera`` are null when unknown; ``camera`` is 1-based, as ``camK`` in file names;
``score`` is the cosine similarity. ``--html`` also writes a self-contained page of the rank lists.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from signal_core import SignalConfig, load_weights
from signal_core.data import DATASETS, is_triples_folder, read_triples_folder
from signal_core.retrieval.feature_store import FeatureSet, is_feature_folder, read_features, sha256_file
from signal_core.retrieval.folder_features import encode_records
from signal_core.retrieval.index import GalleryIndex
from signal_core.utils.allocator import keep_freed_memory
from signal_core.utils.atomic import write_json

from .cli import run_command
from .rank_page import RankedTriple, RankList, write_rank_page

INDEX_KINDS = ("exact", "ivfpq", "auto")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.search", description=__doc__.split("\n")[0])
    p.add_argument("--features", required=True, help="the gallery's feature folder (python -m train.extract)")
    p.add_argument("--queries", required=True, help="a triples folder (needs --weights) or a feature folder")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--out", required=True, help="results.json to write")
    p.add_argument("--html", help="also write this HTML page of rank lists (thumbnails embedded)")
    p.add_argument("--html-queries", type=int, default=50, help="queries shown on the HTML page (default 50)")
    p.add_argument("--index", choices=INDEX_KINDS, default="auto", help="gallery index (default auto: by size)")
    p.add_argument("--drop-junk", action="store_true",
                   help="leave out gallery triples of the query's identity seen by the query's camera (or scene, "
                        "when both carry scene ids), as the evaluation protocols do; unknown identities are kept")
    p.add_argument("--weights", help="the gallery's weights, to extract a triples folder of queries")
    p.add_argument("--dataset", choices=DATASETS, help="preset of an authors' .pth")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable query triples")
    p.add_argument("--threads", type=int, help="CPU threads of the model (default: torch's; 1 can be much faster "
                                               "when other processes keep the cores busy)")
    return p.parse_args(argv)


def query_features(args: argparse.Namespace, gallery: FeatureSet) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Query features [M, D] and rows: read from a feature folder, or extracted from a triples folder."""
    gallery_sha = gallery.manifest["model"]["sha256"]
    if is_feature_folder(args.queries):
        queries = read_features(args.queries)
        if queries.manifest["model"]["sha256"] != gallery_sha:
            raise ValueError(f"the query features in '{args.queries}' come from other weights than the gallery's "
                             f"('{args.features}'); extract both with the same --weights.")
        return queries.features, queries.metadata
    if not is_triples_folder(args.queries):
        raise ValueError(f"--queries '{args.queries}' is neither a feature folder (manifest.json) nor a triples "
                         "folder (RGB/, NI/, TI/ with the same file names).")
    if not args.weights:
        raise ValueError("--queries is a triples folder: give --weights (the gallery's weights) to extract it.")
    if not Path(args.weights).is_file():
        raise FileNotFoundError(f"weights file '{args.weights}' does not exist.")
    if sha256_file(args.weights) != gallery_sha:
        raise ValueError(f"--weights '{args.weights}' are not the weights the gallery was extracted with "
                         f"({gallery.manifest['model'].get('path')}); use those.")
    records = read_triples_folder(Path(args.queries).expanduser().resolve())
    preset = SignalConfig.preset(args.dataset) if args.dataset else None
    model = load_weights(args.weights, preset, torch.device(args.device)).eval()
    model.set_inference_precision(gallery.manifest["settings"].get("precision", "fp32"))
    encoded = encode_records(model, records, args.device, args.batch_size, args.num_workers, args.skip_bad)
    for s in encoded.skipped:
        print(f"skipped unreadable query {s['name']}: {s['error']}", file=sys.stderr)
    return encoded.features, encoded.rows


def junk_labels(q_rows: list[dict[str, Any]], g_rows: list[dict[str, Any]]) -> tuple[dict, dict]:
    """(query keyword arguments of ``GalleryIndex.search``, gallery metadata) for junk filtering.

    Unknown identities never match: -2 for a query, -1 in the gallery. Scenes are used when every
    query and gallery row has one (MSVR310), else cameras.
    """
    by = "sceneid" if all(r.get("sceneid") is not None for r in q_rows + g_rows) else "camid"
    value = lambda row, key, unknown: unknown if row.get(key) is None else int(row[key])  # noqa: E731
    queries = {"query_pids": [value(r, "pid", -2) for r in q_rows], f"query_{by}s": [value(r, by, -2) for r in q_rows]}
    gallery = {"pid": [value(r, "pid", -1) for r in g_rows], by: [value(r, by, -1) for r in g_rows]}
    return queries, gallery


def _labels(row: dict[str, Any]) -> dict[str, Any]:
    camid = row.get("camid")
    return {"name": row["name"], "identity": row.get("pid"), "camera": None if camid is None else camid + 1,
            "paths": row["paths"]}


def rank_results(q_rows: list[dict[str, Any]], g_rows: list[dict[str, Any]], scores: np.ndarray,
                 rows: np.ndarray) -> list[dict[str, Any]]:
    """Per query: its labels and the matches (rank, score, labels), best first; rows < 0 (none) left out."""
    results = []
    for q, q_scores, q_hits in zip(q_rows, scores, rows):
        matches = [{"rank": rank, **_labels(g_rows[int(r)]), "score": round(float(s), 6)}
                   for rank, (s, r) in enumerate(((s, r) for s, r in zip(q_scores, q_hits) if r >= 0), start=1)]
        results.append({**_labels(q), "matches": matches})
    return results


def _ranked(item: dict[str, Any]) -> RankedTriple:
    """A result entry (query or match) as a triple of the HTML page."""
    camera = item["camera"]
    return RankedTriple(item["name"], item["paths"], item["identity"], None if camera is None else camera - 1,
                        item.get("score"), item.get("rank"))


def rank1_summary(results: list[dict[str, Any]]) -> str:
    """"rank-1 same identity: a / b queries" over the queries whose identity and top match's are known."""
    known = [r for r in results if r["identity"] is not None and r["matches"]
             and r["matches"][0]["identity"] is not None]
    if not known:
        return "identities unknown: no rank-1 check"
    hits = sum(r["matches"][0]["identity"] == r["identity"] for r in known)
    return f"rank-1 same identity: {hits} / {len(known)} queries"


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.top_k < 1 or args.html_queries < 0 or (args.threads is not None and args.threads < 1):
        raise ValueError("--top-k and --threads must be at least 1, --html-queries 0 or more.")
    if args.threads:
        torch.set_num_threads(args.threads)
    gallery = read_features(args.features)
    if len(gallery.features) == 0:
        raise ValueError(f"the gallery feature folder '{args.features}' holds no features.")
    q_feats, q_rows = query_features(args, gallery)
    if len(q_feats) == 0:
        raise ValueError(f"no readable query triples in '{args.queries}'.")
    if q_feats.shape[1] != gallery.features.shape[1]:
        raise ValueError(f"query features have dimension {q_feats.shape[1]}, the gallery's {gallery.features.shape[1]}.")
    start = time.perf_counter()
    junk = junk_labels(q_rows, gallery.metadata) if args.drop_junk else None
    index = GalleryIndex.build(gallery.features, kind=args.index, metadata=junk and junk[1])
    scores, rows = index.search(q_feats, min(args.top_k, len(gallery.features)),  # [M, k], [M, k]
                                **(junk[0] if junk else {}))
    seconds = time.perf_counter() - start
    results = rank_results(q_rows, gallery.metadata, np.asarray(scores), np.asarray(rows))
    payload = {"gallery": str(Path(args.features).resolve()), "queries": str(Path(args.queries).resolve()),
               "top_k": args.top_k, "index": index.kind, "drop_junk": args.drop_junk,
               "model_sha256": gallery.manifest["model"]["sha256"], "results": results}
    write_json(args.out, payload)
    print(f"{len(results)} queries x {len(gallery.features)} gallery triples, top {args.top_k}, index {index.kind} "
          f"(build + search {seconds:.2f} s); {rank1_summary(results)}; wrote {args.out}")
    if args.html:
        lists = [RankList(_ranked(r), [_ranked(m) for m in r["matches"]]) for r in results]
        page = write_rank_page(args.html, lists, notes=[f"gallery: {args.features}", f"queries: {args.queries}"],
                               max_queries=args.html_queries)
        print(f"wrote {page.path}: {page.queries_shown} of {page.queries_total} queries, {page.hits} green and "
              f"{page.misses} red borders")
    return payload


def main(argv=None) -> int:
    args = parse_args(argv)
    keep_freed_memory()  # faster large CPU tensors when queries are extracted (signal_core/utils/allocator.py)
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
