"""Scale-out benchmark: Ray Data extraction vs the single-process path, and a Milvus Lite gallery beside faiss.

    python -m benchmarks.scale_bench                                 # 256 triples; 100,000 x 3072 gallery
    python -m benchmarks.scale_bench --triples 32 --rows 5000 --dim 256 --queries 50   # quick smoke run

Extraction: the ``tiny`` preset with random weights (the speed of a model, not its accuracy) on
synthetic 256 x 128 triples, into a feature folder: the plain path (``extract_to_folder``, one
process, ``--threads`` torch threads), then Ray with 1 and 2 actors (``extract_with_ray``, one local
Ray of ``--ray-cpus`` CPUs started once, not counted; each run's wall time includes starting its
actors, which load torch and the weights). All three in the same run, same batch and shard sizes;
the Ray folders are checked equal to the plain one.

Gallery: the synthetic identity-structured features of ``benchmarks/index_bench.py`` (``make_features``),
``--rows`` x ``--dim``; queries are held-out samples of the same identities. Milvus Lite (a FLAT
collection, inner product; build = create + insert + flush), faiss exact (``IndexFlatIP``) and faiss IVF
(``GalleryIndex`` kind ivfpq, default settings): build time, single-query p50 / p95 latency (one
query per call) and recall@10 against the exact top-10.

Writes benchmarks/scale-cpu-<cores>core-<date>.json (with ``uptime`` before and after each part: the
machine is shared) and prints a summary.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch

from benchmarks.index_bench import exact_top_k, make_features, recall_at_k
from signal_core import SignalConfig, build_model, save_checkpoint
from signal_core.data import read_triples_folder
from signal_core.retrieval.feature_store import read_features, read_manifest
from signal_core.retrieval.folder_features import extract_to_folder
from signal_core.retrieval.index import GalleryIndex
from signal_core.utils.atomic import write_json
from signal_core.utils.hashing import sha256_file


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cpu() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    return {"model": name or platform.processor(), "cores": os.cpu_count(), "avx2": "avx2" in flags,
            "avx512f": "avx512f" in flags, "amx": any(f.startswith("amx") for f in flags)}


def make_triples(root: Path, n: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for d in ("RGB", "NI", "TI"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rgb = np.kron(rng.integers(0, 256, (16, 8, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8))  # 256 x 128
        name = f"{i % 50 + 1:06d}_cam{i % 3 + 1}_{i:05d}.png"
        Image.fromarray(rgb).save(root / "RGB" / name)
        Image.fromarray(255 - rgb[..., 1]).save(root / "NI" / name)
        Image.fromarray(rgb.mean(-1).astype(np.uint8)).save(root / "TI" / name)
    return root


def bench_extraction(args: argparse.Namespace, tmp: Path) -> dict:
    from signal_core.retrieval.ray_extraction import ModelSource, RayOptions, extract_with_ray, start_ray

    torch.manual_seed(0)
    weights = tmp / "tiny.safetensors"
    model = build_model(SignalConfig.preset("tiny", num_classes=50, num_cameras=3)).eval()
    save_checkpoint(model, weights)
    records = read_triples_folder(make_triples(tmp / "triples", args.triples).resolve())
    info = {"sha256": sha256_file(weights), "path": str(weights)}
    settings = {"source": {"kind": "bench"}, "precision": model.set_inference_precision("fp32"), "engine": "torch",
                "onnx_sha256": None}
    common = {"batch_size": args.batch_size, "shard_size": args.shard_size, "progress": False}
    out = {"model": "tiny preset, random weights", "triples": args.triples, "image": "256 x 128", **common,
           "threads_per_worker": args.threads, "uptime_before": uptime()}
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    extract_to_folder(model, records, tmp / "plain", info, settings, **common)
    out["plain"] = {"seconds": time.perf_counter() - start}
    start = time.perf_counter()
    start_ray(RayOptions(num_cpus=args.ray_cpus))
    out["ray_start_s"] = time.perf_counter() - start
    plain = read_features(tmp / "plain")
    for actors in (1, 2):
        folder = tmp / f"ray{actors}"
        start = time.perf_counter()
        extract_with_ray(ModelSource(str(weights), None, "fp32"), model.cfg, records, folder, info, settings,
                         RayOptions(actors=actors, threads=args.threads), **common)
        got = read_features(folder)
        out[f"ray_{actors}_actor"] = {"seconds": time.perf_counter() - start,
                                      "max_abs_diff": float(np.abs(got.features - plain.features).max()),
                                      "same_manifest": read_manifest(folder) == read_manifest(tmp / "plain")}
    import ray

    ray.shutdown()
    for key in ("plain", "ray_1_actor", "ray_2_actor"):
        out[key]["triples_per_s"] = args.triples / out[key]["seconds"]
    out["uptime_after"] = uptime()
    return out


def latency(search, queries: np.ndarray, k: int = 10) -> dict:
    times = []
    for q in queries:
        t = time.perf_counter()
        search(q[None], k)
        times.append((time.perf_counter() - t) * 1e3)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def bench_gallery(args: argparse.Namespace, tmp: Path) -> dict:
    from signal_core.retrieval.milvus_index import MilvusGallery

    out = {"rows": args.rows, "dim": args.dim, "queries": args.queries, "latency_queries": args.latency_queries,
           "faiss_threads": 1, "uptime_before": uptime()}
    faiss.omp_set_num_threads(1)
    n_ids = max(1, args.rows // 20)
    gallery = np.empty((args.rows, args.dim), np.float32)
    make_features(args.rows, args.dim, n_ids, seed=10, out=gallery)
    queries = np.empty((args.queries, args.dim), np.float32)
    make_features(args.queries, args.dim, n_ids, seed=11, out=queries)
    truth = exact_top_k(gallery, queries, 10)
    lat = queries[:args.latency_queries]
    start = time.perf_counter()
    milvus = MilvusGallery.build(f"milvus:{tmp / 'gallery.db'}", gallery, info={"model_sha256": "bench"})
    milvus.save()
    build_s = time.perf_counter() - start
    out["milvus_lite"] = {"build_s": build_s, "index": "FLAT, IP",
                          "recall@10": recall_at_k(milvus.search(queries, 10).rows, truth),
                          **latency(milvus.search, lat)}
    milvus.close()
    for kind in ("exact", "ivfpq"):
        start = time.perf_counter()
        index = GalleryIndex.build(gallery, kind=kind)
        build_s = time.perf_counter() - start
        recall = recall_at_k(index.search(queries, 10).rows, truth)
        out[f"faiss_{kind}"] = {"build_s": build_s, "recall@10": recall, **latency(index.search, lat)}
        del index
    out["uptime_after"] = uptime()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale_bench", description=__doc__.split("\n")[0])
    p.add_argument("--triples", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--shard-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the plain path and of each actor")
    p.add_argument("--ray-cpus", type=int, default=2)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=3072)
    p.add_argument("--queries", type=int, default=300, help="queries for recall@10")
    p.add_argument("--latency-queries", type=int, default=100, help="single-query latency samples")
    p.add_argument("--skip", choices=("extraction", "gallery"), help="leave one part out")
    p.add_argument("--out", help="JSON path (default benchmarks/scale-cpu-<cores>core-<date>.json)")
    args = p.parse_args(argv)
    import pymilvus
    import ray

    report = {"cpu": cpu(), "versions": {"ray": ray.__version__, "pymilvus": pymilvus.__version__,
                                         "faiss": faiss.__version__, "torch": torch.__version__},
              "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    with tempfile.TemporaryDirectory() as tmp:
        if args.skip != "extraction":
            report["extraction"] = bench_extraction(args, Path(tmp))
            print(report["extraction"])
        if args.skip != "gallery":
            report["gallery"] = bench_gallery(args, Path(tmp))
            print(report["gallery"])
    path = args.out or f"benchmarks/scale-cpu-{os.cpu_count()}core-{time.strftime('%Y-%m-%d')}.json"
    write_json(path, report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
