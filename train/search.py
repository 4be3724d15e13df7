"""Rank a gallery feature folder for every query triple:
``python -m train.search --features FEATS --queries DIR|QFEATS --top-k K --out results.json [--html ranks.html]``.

``--features`` is a feature folder written by ``python -m train.extract``. ``--queries`` is either
another feature folder (extracted with the same weights) or a triples folder, whose features are
computed here with ``--weights`` (the same weights as the gallery: the sha256 is checked) in the
gallery's precision and registration (``--registration``, if given, must be the gallery's). The gallery
is searched through ``signal_core.retrieval.index.GalleryIndex`` (exact search, or IVF-PQ for large
galleries; ``--index auto`` picks by size), or, with ``--index
gallery.sgi|milvus:gallery.db|milvus://host:19530`` (saved by ``python -m train.extract ... --index``),
through that saved index, whose rows stand in for ``--features`` (docs/scale.md).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from signal_core import SignalConfig, load_weights, resolve_weights
from signal_core.data import DATASETS, UNKNOWN, is_triples_folder, label_from, read_triples_folder
from signal_core.retrieval.feature_store import is_feature_folder, read_features
from signal_core.retrieval.folder_features import check_registration, encode_records, recorded_registration
from signal_core.retrieval.gallery_open import index_rows, is_index_spec, open_index, rows_metadata
from signal_core.retrieval.index import GalleryIndex
from signal_core.utils.atomic import write_json
from signal_core.utils.hashing import sha256_file
from signal_core.weights_source import WEIGHTS_HELP

from .cli import add_registration_argument, command_main, command_parser
from .flags import (
    MAX_PROCESSES,
    THREADS_HELP,
    default_device,
    device_flag,
    index_input,
    input_path,
    output_file,
    threads,
    weights_input,
    whole,
)
from .rank_page import PageTriple, RankList, write_rank_page

INDEX_KINDS = ("exact", "ivfpq", "auto")


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m train.search", __doc__.split("\n")[0])
    p.add_argument("--features", type=input_path,
                   help="the gallery's feature folder (python -m train.extract); not with a saved --index")
    p.add_argument("--queries", required=True, type=input_path,
                   help="a triples folder (needs --weights) or a feature folder")
    p.add_argument("--top-k", type=whole(1), default=10)
    p.add_argument("--out", required=True, type=output_file, help="results.json to write")
    p.add_argument("--html", type=output_file, help="also write this HTML page of rank lists (thumbnails embedded)")
    p.add_argument("--html-queries", type=whole(0), default=50, help="queries shown on the HTML page (default 50)")
    p.add_argument("--index", default="auto", type=index_input,
                   help="gallery index built here: exact|ivfpq|auto (default auto: by size); or a saved one: "
                        "FILE.sgi, milvus:FILE.db, milvus://HOST:PORT (python -m train.extract --index)")
    p.add_argument("--drop-junk", action="store_true",
                   help="leave out gallery triples of the query's identity seen by the query's camera (or scene, "
                        "when both carry scene ids), as the evaluation protocols do; unknown identities are kept")
    p.add_argument("--weights", type=weights_input,
                   help="the gallery's weights, to extract a triples folder of queries: " + WEIGHTS_HELP)
    p.add_argument("--dataset", choices=DATASETS, help="preset of an authors' .pth")
    add_registration_argument(p, "the one the gallery's features were made with; another is refused")
    p.add_argument("--device", type=device_flag, default=default_device())
    p.add_argument("--batch-size", type=whole(1), default=32)
    p.add_argument("--num-workers", type=whole(0, MAX_PROCESSES), default=0)
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable query triples")
    p.add_argument("--threads", type=threads,
                   help=f"CPU threads of the model (default: torch's; {THREADS_HELP}; 1 can be much faster when other "
                        "processes keep the cores busy)")
    return p.parse_args(argv)


def query_features(args: argparse.Namespace, gallery: Gallery) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Query features [M, D] and rows: read from a feature folder, or extracted from a triples folder."""
    gallery_sha = gallery.model_sha256
    if is_feature_folder(args.queries):
        queries = read_features(args.queries)
        if queries.manifest["model"]["sha256"] != gallery_sha:
            raise ValueError(f"the query features in '{args.queries}' come from other weights than the gallery's "
                             f"('{gallery.label}'); extract both with the same --weights.")
        theirs, ours = recorded_registration(queries.manifest["settings"]), recorded_registration(gallery.settings)
        if theirs != ours:
            raise ValueError(f"the query features in '{args.queries}' were made with registration '{theirs}', the "
                             f"gallery's ('{gallery.label}') with '{ours}'; extract both with the same --registration.")
        return queries.features, queries.metadata
    if not is_triples_folder(args.queries):
        raise ValueError(f"--queries '{args.queries}' is neither a feature folder (manifest.json) nor a triples "
                         "folder (RGB/, NI/, TI/ with the same file names).")
    if not args.weights:
        raise ValueError("--queries is a triples folder: give --weights (the gallery's weights) to extract it.")
    weights = resolve_weights(args.weights)  # a local file (Hub names: from the Hugging Face cache)
    if sha256_file(weights) != gallery_sha:
        raise ValueError(f"--weights '{args.weights}' are not the weights the gallery '{gallery.label}' was "
                         "extracted with; use those.")
    records = read_triples_folder(Path(args.queries).expanduser().resolve())
    preset = SignalConfig.preset(args.dataset) if args.dataset else None
    registration = args.registration or recorded_registration(gallery.settings)
    model = load_weights(weights, preset, torch.device(args.device), registration).eval()
    check_registration(gallery.settings, model.cfg, f"the gallery '{gallery.label}'")
    model.set_inference_precision(gallery.precision)
    encoded = encode_records(model, records, args.device, args.batch_size, args.num_workers, args.skip_bad)
    for s in encoded.skipped:
        print(f"skipped unreadable query {s['name']}: {s['error']}", file=sys.stderr)
    return encoded.features, encoded.rows


def junk_labels(q_rows: list[dict[str, Any]], g_rows: list[dict[str, Any]]) -> tuple[dict, dict]:
    """(query keyword arguments of ``GalleryIndex.search``, gallery metadata) for junk filtering.

    Unknown identities never match: -2 for a query, UNKNOWN (-1) in the gallery. Scenes are used when every
    query and gallery row has one (MSVR310), else cameras.
    """
    by = "sceneid" if all(r.get("sceneid") is not None for r in q_rows + g_rows) else "camid"
    value = lambda row, key, unknown: unknown if row.get(key) is None else int(row[key])  # noqa: E731
    queries = {"query_pids": [value(r, "pid", -2) for r in q_rows], f"query_{by}s": [value(r, by, -2) for r in q_rows]}
    gallery = {"pid": [label_from(r.get("pid")) for r in g_rows], by: [label_from(r.get(by)) for r in g_rows]}
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


def _ranked(item: dict[str, Any]) -> PageTriple:
    """A result entry (query or match) as a triple of the HTML page."""
    camera = item["camera"]  # 1-based, null when unknown
    return PageTriple(item["name"], item["paths"], label_from(item["identity"]),
                      UNKNOWN if camera is None else camera - 1, item.get("score"), item.get("rank"))


def rank1_summary(results: list[dict[str, Any]]) -> str:
    """"rank-1 same identity: a / b queries" over the queries whose identity and top match's are known."""
    known = [r for r in results if r["identity"] is not None and r["matches"]
             and r["matches"][0]["identity"] is not None]
    if not known:
        return "identities unknown: no rank-1 check"
    hits = sum(r["matches"][0]["identity"] == r["identity"] for r in known)
    return f"rank-1 same identity: {hits} / {len(known)} queries"


@dataclass
class Gallery:
    """The searched gallery: its index (built here or saved), rows and the weights it came from."""

    index: Any  # GalleryIndex or MilvusGallery
    rows: list[dict[str, Any]]
    model_sha256: str
    precision: str
    label: str  # the feature folder or saved index, as given
    seconds: float  # to build or open the index
    settings: dict[str, Any]  # what the features were made with: the folder's settings, the index's info


def open_gallery(args: argparse.Namespace, junk_rows: bool) -> Gallery:
    """A saved ``--index``, or an index of ``--features`` built here (with junk labels when ``junk_rows``)."""
    if is_index_spec(args.index):
        if args.features:
            raise ValueError("--index is a saved gallery index: it holds the gallery's rows; drop --features.")
        start = time.perf_counter()
        index = open_index(args.index)
        return Gallery(index, index_rows(index), str(index.info.get("model_sha256")),
                       str(index.info.get("precision", "fp32")), args.index, time.perf_counter() - start,
                       dict(index.info))
    if args.index not in INDEX_KINDS:
        raise ValueError(f"--index '{args.index}': use {'|'.join(INDEX_KINDS)}, or a saved index (FILE.sgi, "
                         "milvus:FILE.db, milvus://HOST:PORT).")
    if not args.features:
        raise ValueError("give --features FEATS (a feature folder), or a saved --index.")
    features, rows, manifest = read_features(args.features)
    if len(features) == 0:
        raise ValueError(f"the gallery feature folder '{args.features}' holds no features.")
    metadata = ({k: v for k, v in rows_metadata(rows).items() if k in ("pid", "camid", "sceneid")}  # -1: unknown
                if junk_rows else None)
    start = time.perf_counter()
    index = GalleryIndex.build(features, kind=args.index, metadata=metadata)
    return Gallery(index, rows, manifest["model"]["sha256"], manifest["settings"].get("precision", "fp32"),
                   args.features, time.perf_counter() - start, manifest["settings"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    gallery = open_gallery(args, args.drop_junk)
    q_feats, q_rows = query_features(args, gallery)
    if len(q_feats) == 0:
        raise ValueError(f"no readable query triples in '{args.queries}'.")
    if q_feats.shape[1] != gallery.index.dim:
        raise ValueError(f"query features have dimension {q_feats.shape[1]}, the gallery's {gallery.index.dim}.")
    start = time.perf_counter()
    junk = junk_labels(q_rows, gallery.rows) if args.drop_junk else None
    scores, rows = gallery.index.search(q_feats, min(args.top_k, len(gallery.index)),  # [M, k], [M, k]
                                        **(junk[0] if junk else {}))
    seconds = time.perf_counter() - start + gallery.seconds
    results = rank_results(q_rows, gallery.rows, np.asarray(scores), np.asarray(rows))
    where = gallery.label if is_index_spec(args.index) else str(Path(args.features).resolve())
    payload = {"gallery": where, "queries": str(Path(args.queries).resolve()), "top_k": args.top_k,
               "index": gallery.index.kind, "drop_junk": args.drop_junk, "model_sha256": gallery.model_sha256,
               "results": results}
    write_json(args.out, payload)
    step = "open" if is_index_spec(args.index) else "build"
    print(f"{len(results)} queries x {len(gallery.rows)} gallery triples, top {args.top_k}, index {gallery.index.kind} "
          f"({step} + search {seconds:.2f} s); {rank1_summary(results)}; wrote {args.out}")
    if args.html:
        lists = [RankList(_ranked(r), [_ranked(m) for m in r["matches"]]) for r in results]
        page = write_rank_page(args.html, lists, notes=[f"gallery: {gallery.label}", f"queries: {args.queries}"],
                               max_queries=args.html_queries)
        print(f"wrote {page.path}: {page.queries_shown} of {page.queries_total} queries, {page.hits} green and "
              f"{page.misses} red borders")
    return payload


def main(argv=None) -> int:
    return command_main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
