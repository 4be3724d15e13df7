"""Query latency of the demo: :meth:`SearchEngine.search` end to end (decode, encode, explain,
overlays, ranking, thumbnails), gallery feature extraction excluded.

    python -m benchmarks.demo_bench --weights assets/demo_model.safetensors --gallery assets/demo/gallery
    python -m benchmarks.demo_bench --random-preset rgbnt201 --gallery assets/demo/gallery   # random ViT-B/16
    python -m benchmarks.demo_bench ... --no-explain      # features + ranking only

Prints p50 / p95 / mean in milliseconds (and JSON with ``--json``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence

import numpy as np
import torch

from demo.search import SearchEngine


def measure_query_latency(engine: SearchEngine, queries: Sequence[Sequence[str]] | None = None, n: int = 50,
                          warmup: int = 3, top_k: int = 10, camera=None, explain: bool = True) -> dict:
    """Time ``n`` searches (after ``warmup`` untimed ones).

    Args:
        engine: a built engine (its gallery features already computed).
        queries: (rgb, nir, tir) path triples, cycled; default: the gallery's own entries.
        explain: include the SIM / LAM overlays (as the page does).

    Returns:
        {"n", "p50_ms", "p95_ms", "mean_ms", "min_ms", "max_ms", "gallery_size", "explain"}.
    """
    queries = list(queries) if queries else [e.paths for e in engine.gallery.entries]
    top_k = min(top_k, len(engine.gallery))  # the engine refuses a top k over the gallery size
    for i in range(warmup):
        engine.search(*queries[i % len(queries)], top_k=top_k, camera=camera, explain=explain)
    times = []
    for i in range(n):
        start = time.perf_counter()
        engine.search(*queries[i % len(queries)], top_k=top_k, camera=camera, explain=explain)
        times.append((time.perf_counter() - start) * 1000)
    return {"n": n, "p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "mean_ms": statistics.fmean(times), "min_ms": min(times), "max_ms": max(times),
            "gallery_size": len(engine.gallery), "explain": explain}


def main(argv: Sequence[str] | None = None) -> dict:
    from demo.feature_cache import FeatureCache
    from demo.gallery import load_gallery
    from demo.startup import load_examples, load_model, resolve_device, resolve_folder, resolve_weights
    from signal_core import SignalConfig, build_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="checkpoint (as app.py)")
    parser.add_argument("--random-preset", help="instead of --weights: a random-init model of this preset "
                                                "(e.g. rgbnt201 = ViT-B/16)")
    parser.add_argument("--gallery", required=True)
    parser.add_argument("--queries", help="triples folder of queries (default: the gallery's entries)")
    parser.add_argument("--dataset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gallery = load_gallery(args.gallery, args.dataset)
    weights = None
    if args.random_preset:
        torch.manual_seed(0)
        model = build_model(SignalConfig.preset(args.random_preset, pretrained=None, num_classes=10,
                                                num_cameras=4)).to(device).eval()
        model.set_inference_precision(args.precision)
    else:
        weights = resolve_weights(args.weights)
        model, _ = load_model(weights, args.dataset, device, args.precision)
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        engine = SearchEngine.from_gallery(model, gallery, device, weights=weights,
                                           cache=FeatureCache(cache_dir))
        gallery_s = time.perf_counter() - start
        examples = load_examples(resolve_folder(args.queries), limit=1000)
        stats = measure_query_latency(engine, [e.paths for e in examples] or None, n=args.n,
                                      explain=not args.no_explain)
    stats.update(gallery_seconds=gallery_s, device=str(device), threads=torch.get_num_threads(),
                 model=args.random_preset or str(weights))
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"{stats['model']} on {stats['device']} ({stats['threads']} threads), gallery {stats['gallery_size']} "
              f"(features {gallery_s:.1f} s): query p50 {stats['p50_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms, "
              f"mean {stats['mean_ms']:.1f} ms over {stats['n']} (explain={stats['explain']})")
    return stats


if __name__ == "__main__":
    main()
