"""Inference benchmark, all figures from one run on one machine:
``python -m benchmarks.inference_bench [--out runs/bench.json]``.

* the hardware limit: the best matmul GFLOP/s in fp32 and bf16, measured in this run;
* ``extract_features`` of a ViT-B/16 Signal model (random weights, 256x128, batch 8) in fp32 and
  bf16 on the CPU (and on CUDA when present): triples/s, achieved GFLOP/s (FLOPs counted by
  ``torch.utils.flop_counter``) and the fraction of the matmul limit;
* accuracy of bf16 against fp32: feature cosine, and whether every query's top-10 ranking is the same
  on a synthetic benchmark split;
* ranking time for 2,000 queries x 20,000 gallery triples (3072-d features): distances + mAP / CMC;
* the demo's query latency (p50 / p95 over repeated searches) with the bundled demo model and with a
  ViT-B/16 of random weights.

Figures are ratios within this run: compare them with another machine's JSON with care.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from signal_core import SignalConfig, build_model
from signal_core.metrics import evaluate_rank, pairwise_distance
from signal_core.utils.allocator import keep_freed_memory
from signal_core.utils.atomic import write_json

DEMO_WEIGHTS = Path("assets/demo_model.safetensors")
DEMO_GALLERY = Path("assets/demo/gallery")
DEMO_QUERIES = Path("assets/demo/query")


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    """Wall times (s) of ``repeats`` calls after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def machine_info() -> dict:
    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    field = lambda name: next((l.split(":", 1)[1].strip() for l in info if l.startswith(name)), "")  # noqa: E731
    flags, cpu = f" {field('flags')} ", field("model name") or platform.processor()
    return {
        "cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
        "avx512_bf16": " avx512_bf16" in flags, "amx_bf16": " amx_bf16" in flags,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


ENCODER_GEMMS = [(3096, 768, 3072), (3096, 3072, 768), (4096, 4096, 4096)]  # MLP in / out at batch 8, square


def matmul_peak(device: torch.device, dtype: torch.dtype, repeats: int, size: int | None = None) -> float:
    """Best GFLOP/s over a few GEMM shapes (the encoder's own shapes and a large square one; one
    ``size``-cubed GEMM instead when given: a quick run on a CPU without native bf16 matmuls)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = 0.0
    for m, k, n in ([(size, size, size)] if size else ENCODER_GEMMS):
        a = torch.randn(m, k, device=device).to(dtype)
        b = torch.randn(k, n, device=device).to(dtype)
        best = max(best, 2 * m * k * n / min(timed(lambda a=a, b=b: a @ b, repeats, sync)) / 1e9)
    return best


def random_model(preset: str = "rgbnt201", num_cameras: int = 15) -> torch.nn.Module:
    """A Signal model of ``preset`` with random weights (rgbnt201: ViT-B/16 at 256 x 128)."""
    torch.manual_seed(0)
    cfg = SignalConfig.preset(preset, pretrained=None, num_classes=None, num_cameras=num_cameras)
    return build_model(cfg).eval()


def extraction(model, device: torch.device, precision: str, batch: int, repeats: int,
               peak: float) -> dict:
    """Throughput of extract_features on random 256x128 triples."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model.set_inference_precision(precision)
    g = torch.Generator().manual_seed(1)
    images = [torch.randn(batch, 3, *model.cfg.image_size, generator=g).to(device) for _ in range(3)]
    cams = torch.zeros(batch, dtype=torch.long, device=device)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused fp32 MHA kernel hides its matmuls from the counter
    try:
        with FlopCounterMode(display=False) as counter:
            model.extract_features(*images, cams)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    flops = counter.get_total_flops()
    times = timed(lambda: model.extract_features(*images, cams), repeats, sync)
    best = min(times)
    return {"precision": precision, "batch": batch, "triples_per_s": batch / best,
            "triples_per_s_median": batch / statistics.median(times), "gflop_per_triple": flops / batch / 1e9,
            "achieved_gflops": flops / best / 1e9, "fraction_of_matmul_peak": flops / best / 1e9 / peak}


def synthetic_split(root: Path | None, num_triples: int, image_size: tuple[int, int], with_pids: bool = False):
    """Test triples (normalised tensors of ``image_size``) of a synthetic benchmark and their cameras
    (and identities with ``with_pids``); without ``root`` a small one is generated in a temporary folder."""
    from signal_core.data import TripleDataset, build_transforms, load_dataset
    from train.synthetic import SyntheticSpec, generate

    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        if root is None:
            root = Path(tmp)
            generate(SyntheticSpec(train_ids=2, test_ids=max(4, num_triples // 8)), root, progress=False)
        records = load_dataset("rgbnt201", root).gallery
        step = max(1, len(records) // num_triples)
        ds = TripleDataset(records[::step][:num_triples], build_transforms(image_size, train=False))
        items = [ds[i] for i in range(len(ds))]
    stack = lambda key: torch.stack([it[key] for it in items])  # noqa: E731
    out = stack("rgb"), stack("nir"), stack("tir"), torch.tensor([it["camid"] for it in items])
    return (*out, torch.tensor([it["pid"] for it in items])) if with_pids else out


def accuracy(model, device: torch.device, data, batch: int) -> dict:
    """bf16 vs fp32 features of the same triples: cosine, and top-10 agreement (query = gallery)."""
    def features(precision):
        model.set_inference_precision(precision)
        return torch.cat([model.extract_features(*(x[i:i + batch].to(device) for x in data[:3]),
                                                 data[3][i:i + batch].to(device)).cpu()
                          for i in range(0, len(data[0]), batch)])

    f32, b16 = features("fp32"), features("bf16")
    cos = F.cosine_similarity(f32, b16)
    top = lambda f: torch.from_numpy(pairwise_distance(f, f)).topk(min(10, len(f)), largest=False).indices  # noqa: E731
    same = (top(f32) == top(b16)).all(dim=1)
    return {"triples": len(f32), "cosine_min": cos.min().item(), "cosine_mean": cos.mean().item(),
            "top10_identical_fraction": same.float().mean().item()}


def ranking(num_query: int, num_gallery: int, dim: int, repeats: int) -> dict:
    """Distances + evaluate_rank for random features with 500 identities over 6 cameras."""
    g = torch.Generator().manual_seed(0)
    qf, gf = torch.randn(num_query, dim, generator=g), torch.randn(num_gallery, dim, generator=g)
    rng = np.random.default_rng(0)
    qp, gp = rng.integers(0, 500, num_query), rng.integers(0, 500, num_gallery)
    qc, gc = rng.integers(0, 6, num_query), rng.integers(0, 6, num_gallery)
    t_dist = timed(lambda: pairwise_distance(qf, gf), repeats)
    dist = pairwise_distance(qf, gf)
    t_rank = timed(lambda: evaluate_rank(dist, qp, gp, qc, gc), repeats)
    return {"queries": num_query, "gallery": num_gallery, "dim": dim, "distance_s": min(t_dist),
            "rank_s": min(t_rank), "total_s": min(t_dist) + min(t_rank)}


def demo_latency(model, weights: Path | None, searches: int) -> dict:
    """p50 / p95 of the demo's search (encode + explain + overlays + ranking) over the bundled
    gallery, with the demo's default precision ("auto"); gallery features computed first."""
    from benchmarks.demo_bench import measure_query_latency
    from demo.feature_cache import FeatureCache
    from demo.gallery import load_gallery
    from demo.search import SearchEngine

    model.set_inference_precision("auto")
    gallery, queries = load_gallery(DEMO_GALLERY), load_gallery(DEMO_QUERIES)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        engine = SearchEngine.from_gallery(model, gallery, "cpu", weights=weights,
                                           cache=FeatureCache(cache), progress=False)
        gallery_s = time.perf_counter() - start
        stats = measure_query_latency(engine, [e.paths for e in queries.entries], n=searches)
    return {**stats, "precision": model.inference_precision, "gallery_features_s": gallery_s}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.inference_bench", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/bench.json", help="JSON file for the figures")
    p.add_argument("--preset", default="rgbnt201",
                   help="model preset with random weights (default rgbnt201: ViT-B/16 at 256 x 128)")
    p.add_argument("--batch", type=int, default=8, help="triples per extract_features call")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (after one warm-up)")
    p.add_argument("--gemm-size", type=int, default=None,
                   help="measure the matmul limit on one N x N x N GEMM (default: the encoder's GEMM shapes)")
    p.add_argument("--synthetic", type=Path, default=None,
                   help="a synthetic benchmark folder (default: generate a small one in a temp folder)")
    p.add_argument("--accuracy-triples", type=int, default=64, help="triples for the bf16 accuracy check")
    p.add_argument("--demo-queries", type=int, default=50, help="searches for the demo latency")
    p.add_argument("--skip", nargs="*", default=[], choices=["cuda", "accuracy", "ranking", "demo"],
                   help="parts to leave out")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    report: dict = {"machine": machine_info(), "time": time.strftime("%Y-%m-%d %H:%M:%S"), "preset": args.preset}
    print(f"machine: {report['machine']}", flush=True)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                       and "cuda" not in args.skip else [])
    model = random_model(args.preset)
    for device in devices:
        model.to(device)
        peaks = {p: matmul_peak(device, d, args.repeats, args.gemm_size) for p, d in (("fp32", torch.float32),
                                                                      ("bf16", torch.bfloat16))}
        runs = [extraction(model, device, p, args.batch, args.repeats, peaks[p]) for p in ("fp32", "bf16")]
        report[device.type] = {"matmul_peak_gflops": peaks, "extract_features": runs,
                               "bf16_speedup": runs[1]["triples_per_s"] / runs[0]["triples_per_s"],
                               "auto_precision": model.set_inference_precision("auto")}
        for r in runs:
            print(f"[{device.type}] {r['precision']}: {r['triples_per_s']:.2f} triples/s, "
                  f"{r['achieved_gflops']:.0f} GFLOP/s = {100 * r['fraction_of_matmul_peak']:.0f}% of the "
                  f"{peaks[r['precision']]:.0f} GFLOP/s matmul peak", flush=True)
    model.to("cpu")
    if "accuracy" not in args.skip:
        data = synthetic_split(args.synthetic, args.accuracy_triples, model.cfg.image_size)
        report["bf16_accuracy"] = accuracy(model, torch.device("cpu"), data, args.batch)
        print(f"bf16 vs fp32 ({args.preset}, synthetic): {report['bf16_accuracy']}", flush=True)
    if "ranking" not in args.skip:
        report["ranking"] = ranking(2000, 20000, model.cfg.feature_dim, 3)
        print(f"ranking 2,000 x 20,000: {report['ranking']}", flush=True)
    if "demo" not in args.skip:
        from signal_core import load_checkpoint

        report["demo"] = {"demo_model": demo_latency(load_checkpoint(DEMO_WEIGHTS), DEMO_WEIGHTS, args.demo_queries),
                          f"random_{args.preset}": demo_latency(model, None, args.demo_queries)}
        for name, r in report["demo"].items():
            print(f"demo query latency, {name} ({r['precision']}, gallery {r['gallery_size']}): "
                  f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms over {r['n']}", flush=True)
    print(f"wrote {write_json(args.out, report)}")
    return report


def main(argv=None) -> int:
    keep_freed_memory()  # as every entry point does (signal_core/utils/allocator.py)
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
