"""Feature engines side by side, in one run on one machine:
``python benchmarks/engine_bench.py [--out runs/engines.json]``.

A ViT-B/16 Signal model (random weights, rgbnt201 preset: 256 x 128, concat heads) exported to
ONNX, then per engine and precision (torch fp32 / bf16, onnxruntime fp32 / int8, OpenVINO default /
int8): triples/s at batch 8, the ratio to torch fp32, and agreement with torch fp32 features on
synthetic triples (train.synthetic): cosine, rank-1 and top-10 sets (query = gallery, self excluded).
int8 is calibrated on other synthetic triples than those it is scored on. Also: ONNX vs PyTorch
max abs difference of the fp32 graph, and the CPU's flags (AVX-512, VNNI, AMX).

``--authors-code DIR`` (a checkout of github.com/010129/Signal, outside this repository) adds the
authors' own forward (fp32, eval, their test-time feature) with the same weights, timed in the same
run, and every row's ratio to it (benchmarks/authors_model.py). Random-weight ViT-B/16 features are
nearly degenerate (ranks decided by tiny gaps), so agreement is also measured with the bundled demo
model (``--bundled``, default on): torch fp32 vs int8 on onnxruntime and OpenVINO, on synthetic
triples at its input size, with its mAP / rank-1 on them.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.inference_bench import machine_info, random_model, synthetic_split, timed
from signal_core import load_weights
from signal_core.deploy.engines import load_engine
from signal_core.deploy.export import export_onnx
from signal_core.deploy.quantize import quantize_int8
from signal_core.utils.allocator import keep_freed_memory
from signal_core.utils.atomic import write_json

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags() -> dict[str, bool]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    line = next((l for l in text.splitlines() if l.startswith("flags")), "")
    flags = set(line.split(":", 1)[-1].split())
    return {f: f in flags for f in FLAGS}


def features(engine, data, batch: int) -> np.ndarray:
    return np.concatenate([engine(*(x[i:i + batch] for x in data)) for i in range(0, len(data[0]), batch)])


def agreement(ref: np.ndarray, got: np.ndarray, k: int = 10) -> dict:
    """Cosine per triple; rank-1 and top-k set equality per query (query = gallery, self excluded)."""
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))

    def ranks(f):
        d = ((f[:, None] - f[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1, kind="stable")[:, :k]

    a, b = ranks(ref), ranks(got)
    same_sets = [len(set(x) & set(y)) / k for x, y in zip(a, b)]
    return {"cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "rank1_same_fraction": float((a[:, 0] == b[:, 0]).mean()),
            "top10_identical_sets_fraction": float(np.mean([s == 1.0 for s in same_sets])),
            "top10_overlap_mean": float(np.mean(same_sets))}


def measure(name: str, engine, bench_batch, data, batch: int, repeats: int, ref) -> dict:
    times = timed(lambda: engine(*bench_batch), repeats)
    feats = features(engine, data, batch) if data is not None else None
    row = {"engine": name, "precision": engine.precision, "batch": batch,
           "triples_per_s": batch / min(times), "triples_per_s_median": batch / statistics.median(times)}
    if ref is not None and feats is not None:
        row.update(agreement(ref, feats))
    print(f"{name:24s} {engine.precision:5s} {row['triples_per_s']:7.2f} triples/s", flush=True)
    return row, feats


def run(args) -> dict:
    torch.set_num_threads(args.threads or torch.get_num_threads())
    model = random_model(args.preset)
    size = model.cfg.image_size
    rgb, nir, tir, cams = synthetic_split(None, 2 * args.triples, size)
    cams = cams.clamp(max=model.num_cameras - 1)
    data = [t[0::2].numpy() for t in (rgb, nir, tir)] + [cams[0::2].numpy()]  # scored
    calib = [t[1::2].numpy() for t in (rgb, nir, tir)] + [cams[1::2].numpy()]  # int8 calibration
    bench_batch = [x[:args.batch] for x in data]
    report = {"machine": {**machine_info(), "flags": cpu_flags()},
              "model": f"Signal, random weights, {args.preset} preset", "image_size": list(size),
              "batch": args.batch, "triples_scored": len(data[0]), "calibration_triples": len(calib[0]), "rows": []}
    with tempfile.TemporaryDirectory(prefix="signal-engines-") as tmp:
        fp32, int8 = str(Path(tmp) / "fp32.onnx"), str(Path(tmp) / "int8.onnx")
        t = time.perf_counter()
        export_onnx(model, fp32)
        report["export_s"] = time.perf_counter() - t
        batches = [{"rgb": calib[0][i:i + args.batch], "nir": calib[1][i:i + args.batch],
                    "tir": calib[2][i:i + args.batch], "cam_ids": calib[3][i:i + args.batch]}
                   for i in range(0, len(calib[0]), args.batch)]
        t = time.perf_counter()
        quantize_int8(fp32, int8, batches)
        report["quantize_s"] = time.perf_counter() - t
        plan = [("torch", model, "fp32", {}), *([("authors", None, "fp32", {})] if args.authors_code else []),
                ("torch", model, "bf16", {}),
                ("onnxruntime", fp32, None, {"providers": ["CPUExecutionProvider"]}),
                ("onnxruntime", int8, None, {"providers": ["CPUExecutionProvider"]}),
                ("openvino", fp32, None, {}), ("openvino", int8, None, {})]
        ref = None
        for kind, source, precision, options in plan:
            engine = (authors(args.authors_code, model, report) if kind == "authors"
                      else load_engine(source, kind=kind, precision=precision, **options))
            row, feats = measure(kind, engine, bench_batch, data, args.batch, args.repeats, ref)
            if ref is None:
                ref, base = feats, row["triples_per_s"]
            row["ratio_to_torch_fp32"] = row["triples_per_s"] / base
            if kind == "onnxruntime" and engine.precision == "fp32":
                report["onnx_vs_torch_max_abs_diff"] = float(np.abs(feats - ref).max())
                report["feature_abs_max"] = float(np.abs(ref).max())
            report["rows"].append(row)
            del engine
            gc.collect()
    model.set_inference_precision("fp32")
    theirs = next((r["triples_per_s"] for r in report["rows"] if r["engine"] == "authors"), None)
    for row in report["rows"]:
        if theirs:
            row["ratio_to_authors_fp32"] = row["triples_per_s"] / theirs
    if args.bundled:
        report["bundled_model"] = bundled_agreement(args)
    return report


def authors(code_dir: str, model, report: dict):
    """The authors' forward with ``model``'s weights (their code from ``code_dir``)."""
    from benchmarks.authors_model import authors_forward

    forward = authors_forward(code_dir, model)
    report["authors"] = {"code": str(code_dir), "commit": forward.commit,
                         "max_abs_diff_to_ours": forward.max_abs_diff_to_ours}
    print(f"authors' model built from {code_dir}: max abs diff to ours {forward.max_abs_diff_to_ours:.1e}", flush=True)
    return forward


def bundled_agreement(args, weights: str = "assets/demo_model.safetensors") -> dict:
    """The bundled (trained) model: torch fp32 vs int8 engines on synthetic triples, and its mAP there; with
    its registration off (an exported graph holds none), so every engine computes the same features."""
    from signal_core.metrics import evaluate_rank, pairwise_distance

    model = load_weights(Path(__file__).resolve().parents[1] / weights, registration="none").eval()
    size = model.cfg.image_size
    rgb, nir, tir, camids, pids = synthetic_split(None, 2 * args.bundled_triples, size, with_pids=True)
    cams = torch.where(camids < model.num_cameras, camids, -1)
    data = [t[0::2].numpy() for t in (rgb, nir, tir)] + [cams[0::2].numpy()]
    calib = [t[1::2].numpy() for t in (rgb, nir, tir)] + [cams[1::2].numpy()]
    out = {"weights": weights, "image_size": list(size), "triples_scored": len(data[0]), "rows": []}
    with tempfile.TemporaryDirectory(prefix="signal-engines-") as tmp:
        fp32, int8 = str(Path(tmp) / "fp32.onnx"), str(Path(tmp) / "int8.onnx")
        export_onnx(model, fp32)
        quantize_int8(fp32, int8, [{"rgb": calib[0][i:i + 8], "nir": calib[1][i:i + 8], "tir": calib[2][i:i + 8],
                                    "cam_ids": calib[3][i:i + 8]} for i in range(0, len(calib[0]), 8)])
        ref = None
        for kind, source in (("torch", model), ("onnxruntime", int8), ("openvino", int8)):
            engine = load_engine(source, kind=kind, precision="fp32" if kind == "torch" else None)
            feats = features(engine, data, 8)
            q = torch.nn.functional.normalize(torch.from_numpy(feats), dim=1)
            p, c = pids[0::2], camids[0::2]  # query = gallery; same identity and camera dropped (self too)
            ranked = evaluate_rank(pairwise_distance(q, q), p, p, c, c)
            row = {"engine": kind, "precision": engine.precision, "mAP": 100 * float(ranked.mAP),
                   "rank1": 100 * float(ranked.cmc[0])}
            if ref is None:
                ref = feats
            else:
                row.update(agreement(ref, feats))
            out["rows"].append(row)
            print(f"bundled {kind:12s} {engine.precision:5s} mAP {row['mAP']:.2f} R1 {row['rank1']:.2f}", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/engines.json")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--triples", type=int, default=64, help="scored triples (as many again calibrate int8)")
    p.add_argument("--preset", default="rgbnt201",
                   help="model preset (rgbnt201: ViT-B/16 at 256 x 128; tiny: a smoke test)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--authors-code", metavar="DIR", help="a checkout of github.com/010129/Signal (outside this "
                   "repository): adds the authors' fp32 forward, timed in the same run")
    p.add_argument("--bundled", action=argparse.BooleanOptionalAction, default=True,
                   help="also score int8 against fp32 with the bundled trained demo model")
    p.add_argument("--bundled-triples", type=int, default=200, help="--bundled: scored triples")
    args = p.parse_args(argv)
    keep_freed_memory()
    report = run(args)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
