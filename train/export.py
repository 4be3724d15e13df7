"""Export a model's test-time feature as ONNX (fp32 or int8):
``python -m train.export --weights W [--dataset NAME] --out model.onnx [--precision int8 --calibration DIR]``.

The graph takes rgb / nir / tir [B, 3, H, W] float32 (normalised as in training) and cam_ids [B]
int64 (-1 = unknown camera: the mean camera embedding) and returns ``features`` [B, F], the values
of ``SignalModel.extract_features``; the batch size is dynamic. Right after writing, the graph is
checked (onnx.checker) and run on onnxruntime against PyTorch on random inputs: the maximum
absolute difference (fp32) or the cosine (int8) is printed.

int8: post-training static quantization (onnxruntime, QDQ, per-channel int8 weights) of the
encoder's weight matmuls, calibrated on ``--calibration``: a triples folder (RGB/ NI/ TI/ with the
same file names) or, with ``--dataset``, a dataset root (its training split).

A model with image-level registration (``model.registration``, e.g. the bundled demo model's
``orientation``) is refused: the graph cannot hold its search. ``--registration none`` exports the same
weights without it; register NIR / TIR in front of the engine with
``signal_core.model.registration.Registration`` (docs/deploy.md).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from signal_core import SignalConfig, SignalModel, load_weights
from signal_core.data import (
    DATASETS,
    TripleDataset,
    TripleRecord,
    build_transforms,
    is_triples_folder,
    load_dataset,
    read_triples_folder,
)
from signal_core.deploy.engines import load_engine
from signal_core.deploy.export import export_onnx
from signal_core.deploy.quantize import quantize_int8
from signal_core.modalities import MODALITIES
from signal_core.weights_source import WEIGHTS_HELP

from .cli import add_registration_argument, command_main, command_parser
from .flags import input_path, output_file, weights_input, whole


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m train.export", __doc__.split("\n")[0])
    p.add_argument("--weights", required=True, type=weights_input, help=WEIGHTS_HELP)
    p.add_argument("--dataset", choices=DATASETS,
                   help="preset of the authors' .pth; layout of a --calibration dataset root")
    p.add_argument("--out", required=True, type=output_file, help="the .onnx file to write")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    p.add_argument("--calibration", type=input_path, help="int8: a triples folder, or a dataset root with --dataset")
    p.add_argument("--calibration-size", type=whole(1), default=128, help="int8: triples used for calibration")
    p.add_argument("--batch-size", type=whole(1), default=8, help="int8: calibration batch size")
    add_registration_argument(p, "the checkpoint's own; the graph holds none: a model with one needs "
                                 "--registration none and the registration in front of the engine")
    return p.parse_args(argv)


def calibration_records(root: str, dataset: str | None, count: int) -> list[TripleRecord]:
    """Up to ``count`` records spread evenly over a triples folder or a dataset's training split."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"calibration folder not found: {path}")
    if is_triples_folder(path):
        records = read_triples_folder(path)
    elif dataset:
        records = load_dataset(dataset, path).train
    else:
        raise ValueError(f"{path} is not a triples folder (RGB/, NI/, TI/ with the same file names); for a "
                         "dataset root give --dataset.")
    if not records:
        raise ValueError(f"{path} holds no triples to calibrate on.")
    step = max(1, len(records) // count)
    return records[::step][:count]


def calibration_batches(records: list[TripleRecord], model: SignalModel, batch: int) -> Iterator[dict]:
    """Batches {rgb, nir, tir, cam_ids} as numpy, transformed as at test time."""
    ds = TripleDataset(records, build_transforms(model.cfg.image_size, train=False))
    cams = model.num_cameras
    for start in range(0, len(ds), batch):
        items = [ds[i] for i in range(start, min(start + batch, len(ds)))]
        out = {k: torch.stack([it[k] for it in items]).numpy() for k in MODALITIES}
        ids = np.array([it["camid"] for it in items], dtype=np.int64)
        out["cam_ids"] = np.where((ids >= 0) & (ids < cams), ids, -1)
        yield out


def compare(model: SignalModel, path: str) -> dict[str, float]:
    """onnxruntime vs PyTorch on 3 random triples (cameras 0, unknown, last): max |diff|, min cosine."""
    g = torch.Generator().manual_seed(0)
    images = [torch.randn(3, 3, *model.cfg.image_size, generator=g).numpy() for _ in range(3)]
    cams = np.array([0, -1, max(model.num_cameras - 1, -1)], dtype=np.int64)
    ref = load_engine(model, kind="torch")(*images, cams)
    got = load_engine(path, kind="onnxruntime", providers=["CPUExecutionProvider"])(*images, cams)
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    return {"max_abs_diff": float(np.abs(ref - got).max()), "cosine_min": float(cos.min())}


def run(args: argparse.Namespace) -> dict[str, float]:
    if args.precision == "int8" and not args.calibration:
        raise ValueError("--precision int8 needs --calibration (a triples folder, or a dataset root with --dataset).")
    preset = SignalConfig.preset(args.dataset) if args.dataset else None
    model = load_weights(args.weights, preset, registration=args.registration).eval()
    if args.precision == "fp32":
        export_onnx(model, args.out)
    else:
        records = calibration_records(args.calibration, args.dataset, args.calibration_size)
        with tempfile.TemporaryDirectory(prefix="signal-export-") as tmp:
            fp32 = str(Path(tmp) / "fp32.onnx")
            export_onnx(model, fp32)
            nodes = quantize_int8(fp32, args.out, calibration_batches(records, model, args.batch_size))
        print(f"int8: {len(nodes)} encoder matmuls quantized, calibrated on {len(records)} triples")
    check = compare(model, args.out)
    print(f"wrote {args.out} ({args.precision}); onnxruntime vs PyTorch on 3 random triples: "
          f"max abs diff {check['max_abs_diff']:.2e}, cosine min {check['cosine_min']:.6f}")
    return check


def main(argv=None) -> int:
    return command_main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
