"""Large-gallery benchmark of signal_core.retrieval.index.GalleryIndex: build time, memory, latency, recall@10.

    python -m benchmarks.index_bench                                  # N = 100k, 200k, 1M at D = 3072
    python -m benchmarks.index_bench --sizes 20000 --dim 512 --queries 200   # quick smoke run

Synthetic features with identity structure (``make_features``): every identity has a centre drawn
in a 384-dimensional latent space with a decaying spectrum (variance of latent dim i ~ (1 + i)^-0.5)
embedded in D dimensions by a fixed random basis; a sample is its centre + within-identity latent
variation + one of 8 shared "camera/background" directions (weight 0.5) + isotropic noise over all D
dimensions, then L2-normalised. About 20 samples per identity. Queries are further samples of
gallery identities drawn from the same generator (held out: not in the gallery). The gallery is
written in chunks to a np.memmap under the temporary folder (deleted afterwards), and the exact
ground truth is computed chunk by chunk, so 1M x 3072 (12.3 GB) is never in RAM.

Measured (``cosine`` in the JSON): the camera term dominates, because ``_basis`` rows have norm
sqrt(D / rows), so the 8 camera rows are 7x longer than the 384 latent rows: same-camera pairs have
cosine ~0.9, a query's mean cosine with its identity's gallery samples is ~0.17-0.20 and with random
rows ~0.11. A query's exact top-10 are then its identity's same-camera samples followed by the
nearest other identities within its camera (1/8 of the gallery): a fine-grained neighbour search in
the ~384-dimensional latent space, which is what recall@10 against exact search measures.

Writes benchmarks/index-cpu-<cores>core-<date>.json and prints a table.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from signal_core.retrieval.index import GalleryIndex, IvfPqConfig
from signal_core.utils.atomic import write_json

LATENT = 384  # latent dimension of the identity centres
N_CAMS = 8  # shared camera/background directions
PER_ID = 20  # samples per identity (on average)
CHUNK = 50_000  # rows generated / scanned at a time


def _basis(dim: int, rows: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((rows, dim)) / np.sqrt(rows)).astype(np.float32)


def make_features(n: int, dim: int, n_ids: int, seed: int, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` [n, dim] with normalised synthetic features; returns their identities [n]."""
    scale = (1.0 + np.arange(LATENT)) ** -0.25  # sqrt of the decaying spectrum
    centres = np.random.default_rng(1).standard_normal((n_ids, LATENT)).astype(np.float32) * scale  # [I, L]
    basis, cams = _basis(dim, LATENT, 2), _basis(dim, N_CAMS, 3) * 0.5 * np.linalg.norm(scale)  # [L, D], [C, D]
    rng = np.random.default_rng(seed)
    pids = rng.integers(0, n_ids, n)
    for start in range(0, n, CHUNK):
        p = pids[start:start + CHUNK]
        lat = centres[p] + 0.6 * rng.standard_normal((len(p), LATENT)).astype(np.float32) * scale
        x = lat @ basis + cams[rng.integers(0, N_CAMS, len(p))]
        x += 0.3 * np.linalg.norm(scale) / np.sqrt(dim) * rng.standard_normal(x.shape).astype(np.float32)
        out[start:start + len(p)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return pids


def exact_top_k(gallery: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """[M, k] rows of the exact top-k, scanning the gallery in chunks."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_r = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(gallery), CHUNK):
        s = queries @ np.asarray(gallery[start:start + CHUNK]).T  # [M, chunk]
        s = np.concatenate([best_s, s], 1)
        r = np.concatenate([best_r, np.arange(start, start + s.shape[1] - k)[None].repeat(len(s), 0)], 1)
        top = np.argpartition(-s, k, axis=1)[:, :k]
        best_s, best_r = np.take_along_axis(s, top, 1), np.take_along_axis(r, top, 1)
    return best_r


def latency(index: GalleryIndex, queries: np.ndarray, k: int = 10, threads: int = 1) -> dict:
    """Single-query latency (one query per call, ``threads`` faiss threads) in ms: p50, p95."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None], k)
        times.append((time.perf_counter() - t) * 1e3)
    faiss.omp_set_num_threads(before)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "faiss_threads": threads}


def same_identity_cosine(gallery: np.ndarray, g_pids: np.ndarray, queries: np.ndarray, q_pids: np.ndarray) -> dict:
    """Mean cosine of a query with the gallery samples of its identity, and with random other rows."""
    same = [float(np.mean(np.asarray(gallery[np.flatnonzero(g_pids == p)]) @ q))
            for q, p in zip(queries[:50], q_pids[:50]) if (g_pids == p).any()]
    random_rows = np.sort(np.random.default_rng(5).choice(len(gallery), 2000, replace=False))
    other = np.asarray(gallery[random_rows]) @ queries[:50].T
    return {"same_identity_mean": float(np.mean(same)), "random_pair_mean": float(np.mean(other)),
            "random_pair_p99": float(np.percentile(other, 99))}


def recall_at_k(rows: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(rows, truth)]))


def rss_mb() -> dict:
    now = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
    return {"rss_mb": now / 1024, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bench_size(n: int, args: argparse.Namespace, tmp: Path) -> dict:
    """Generate, index and measure one gallery size."""
    gallery = np.lib.format.open_memmap(tmp / f"gallery_{n}.npy", "w+", np.float32, (n, args.dim))
    n_ids = max(1, n // PER_ID)
    row: dict = {"n": n, "dim": args.dim, "identities": n_ids, "load_average_before": os.getloadavg()}
    t = time.perf_counter()
    g_pids = make_features(n, args.dim, n_ids, seed=10, out=gallery)
    queries = np.empty((args.queries, args.dim), np.float32)
    q_pids = make_features(args.queries, args.dim, n_ids, seed=11, out=queries)
    truth = exact_top_k(gallery, queries, 10)
    row["generate_and_ground_truth_s"] = time.perf_counter() - t
    row["cosine"] = same_identity_cosine(gallery, g_pids, queries, q_pids)
    print(f"N={n:,}: generated and ground truth in {row['generate_and_ground_truth_s']:.0f} s; "
          f"cosine {row['cosine']}", flush=True)
    if n * args.dim * 4 <= args.exact_max_bytes:
        exact = GalleryIndex.build(gallery, kind="exact")
        row["exact"] = latency(exact, queries[:50], threads=1)  # 50 queries: exact search is slow
        row["exact"]["recall@10"] = recall_at_k(exact.search(queries, 10).rows, truth)
        del exact
    t = time.perf_counter()
    index = GalleryIndex.build(gallery, kind="ivfpq", config=IvfPqConfig(nprobe=args.nprobe, k_factor=args.k_factor))
    row["build_s"] = time.perf_counter() - t
    row["factory"] = index.config.factory(args.dim, n, min(n, index.config.train_rows))
    print(f"N={n:,}: built {row['factory']} in {row['build_s']:.0f} s", flush=True)
    index.save(tmp / "index.sgi")
    row["index_bytes"] = (tmp / "index.sgi").stat().st_size
    row.update(rss_mb())
    row["sweep"] = []
    for nprobe in args.sweep_nprobe:
        for k_factor in args.sweep_k_factor:
            row["sweep"].append(measure(index, queries, truth, nprobe, k_factor, args.latency_queries, threads=1))
    row["default"] = [measure(index, queries, truth, args.nprobe, args.k_factor, args.latency_queries, threads)
                      for threads in (1, 2)]
    row["load_average_after"] = os.getloadavg()
    del index, gallery
    (tmp / "index.sgi").unlink()
    (tmp / f"gallery_{n}.npy").unlink()
    return row


def measure(index: GalleryIndex, queries: np.ndarray, truth: np.ndarray, nprobe: int, k_factor: int, n_latency: int,
            threads: int) -> dict:
    """recall@10 of all queries and single-query latency of the first ``n_latency`` at one setting."""
    index.nprobe, index.k_factor = nprobe, k_factor
    entry = {"nprobe": nprobe, "k_factor": k_factor, "recall@10": recall_at_k(index.search(queries, 10).rows, truth)}
    entry.update(latency(index, queries[:n_latency], threads=threads))
    return entry


def machine() -> dict:
    flags = next((line.split(":")[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    model = next((line.split(":")[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return {"cpu": model, "cpu_count": os.cpu_count(), "faiss": faiss.__version__,
            "faiss_threads": faiss.omp_get_max_threads(), "faiss_gpus": faiss.get_num_gpus(),
            "python": platform.python_version(),
            "avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "amx": any(f.startswith("amx") for f in flags),
            "load_average_at_start": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=3072)
    parser.add_argument("--queries", type=int, default=500, help="held-out queries for recall@10")
    parser.add_argument("--latency-queries", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--nprobe", type=int, default=IvfPqConfig.nprobe)
    parser.add_argument("--k-factor", type=int, default=IvfPqConfig.k_factor)
    parser.add_argument("--sweep-nprobe", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--sweep-k-factor", type=int, nargs="+", default=[10])
    parser.add_argument("--exact-max-bytes", type=float, default=2.5e9, help="time exact search only below this size")
    args = parser.parse_args()
    report = {"machine": machine(), "time": time.strftime("%Y-%m-%d %H:%M:%S"), "generator": __doc__.split("\n\n")[2],
              "sizes": []}
    out = Path(__file__).with_name(f"index-cpu-{os.cpu_count()}core-{time.strftime('%Y-%m-%d')}.json")
    with tempfile.TemporaryDirectory(prefix="index_bench_") as tmp:
        for n in args.sizes:
            report["sizes"].append(bench_size(n, args, Path(tmp)))
            write_json(out, report)
            print_row(report["sizes"][-1])
    print(f"wrote {out}")


def print_row(row: dict) -> None:
    exact = row.get("exact", {}).get("p50_ms")
    print(f"N={row['n']:>9,} D={row['dim']} build {row['build_s']:.0f} s, index {row['index_bytes'] / 1e9:.2f} GB, "
          f"RSS {row['rss_mb']:.0f} MB, exact p50 {exact if exact is None else round(exact, 1)} ms")
    print("  nprobe k_factor threads recall@10  p50 ms  p95 ms")
    for e in row["sweep"] + row["default"]:
        print(f"  {e['nprobe']:>6} {e['k_factor']:>8} {e['faiss_threads']:>7} {e['recall@10']:>9.3f} "
              f"{e['p50_ms']:>7.2f} {e['p95_ms']:>7.2f}")


if __name__ == "__main__":
    main()
