"""Evaluate weights on a dataset's test split:
``python -m train.evaluate --config train/configs/rgbnt201.yaml --data-root DIR --weights FILE``.

``--weights`` takes our ``.safetensors`` checkpoints or the authors' ``Signal_model.pth``;
``--untrained`` evaluates the config's architecture at its random initialisation (a baseline).
Prints mAP, mINP, R1, R5, R10 (percent); ``--out FILE`` writes them as JSON.
"""
from __future__ import annotations

import argparse
import sys

import torch

from signal_core import build_model, load_weights
from signal_core.atomic import write_json
from signal_core.data import load_dataset
from signal_core.inference import MISSING_SETTINGS
from signal_core.precision import PRECISIONS
from signal_core.runtime import keep_freed_memory

from .config import load_config
from .cli import configure_logging, run_command
from .protocol import evaluate_model, format_metrics


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="YAML preset of the dataset")
    p.add_argument("--data-root", required=True, help="the dataset folder itself")
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--weights", help="our .safetensors checkpoint or the authors' .pth")
    weights.add_argument("--untrained", action="store_true",
                         help="instead of --weights: the config's model at its random initialisation "
                              "(seeded with train.seed), as a baseline")
    p.add_argument("--out", help="write the metrics as JSON to this file")
    p.add_argument("--missing", choices=MISSING_SETTINGS, help="zero these modalities (missing-modality test)")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (not used in the paper)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="encoder precision at test time (default fp32, the reference numbers; auto = bf16 "
                        "where the device runs it fast)")
    p.add_argument("--batch-size", type=int, default=None, help="test batch size (default: from the config)")
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="train.KEY=VALUE or model.KEY=VALUE")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    model_cfg, cfg = load_config(args.config, args.overrides)
    device = torch.device(args.device)
    dataset = load_dataset(cfg.dataset, args.data_root)
    if args.untrained:
        torch.manual_seed(cfg.seed)
        model = build_model(model_cfg.replace(pretrained=None, num_classes=None,
                                            num_cameras=dataset.num_train_cams)).to(device)
    else:
        model = load_weights(args.weights, model_cfg, device)
    precision = model.set_inference_precision(args.precision)
    result = evaluate_model(model, dataset, device, args.batch_size or cfg.eval_batch_size,
                            cfg.num_workers if args.num_workers is None else args.num_workers,
                            missing=args.missing, rerank=args.rerank, progress=not args.no_progress)
    metrics = result.as_percent_dict()
    label = f" (missing: {args.missing})" if args.missing else ""
    print(f"{cfg.dataset} test{label}, {result.num_valid_queries} queries, {precision}:\n{format_metrics(metrics)}")
    if args.out:
        write_json(args.out, metrics)
    return metrics


def main(argv=None) -> int:
    args = parse_args(argv)
    keep_freed_memory()  # faster large CPU tensors (signal_core/runtime.py)
    configure_logging()
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
