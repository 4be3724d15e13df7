"""Write the evaluation report of weights on a dataset's test split:
``python -m train.report --config train/configs/rgbnt201.yaml --data-root DIR --weights FILE --out REPORT``.

Same model options as ``train.evaluate``; the report (``REPORT/index.html``, ``metrics.json`` and a
PNG per figure) is described in :mod:`train.report`. When the weights lie in a run folder with a
``history.jsonl``, the training curves are added.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from signal_core import build_model, load_weights
from signal_core.data import load_dataset
from signal_core.precision import PRECISIONS
from signal_core.runtime import keep_freed_memory

from ..cli import run_command
from ..config import load_config
from ..testing import format_metrics
from . import write_report


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.report", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="YAML preset of the dataset")
    p.add_argument("--data-root", required=True, help="the dataset folder itself")
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--weights", help="our .safetensors checkpoint or the authors' .pth")
    weights.add_argument("--untrained", action="store_true",
                         help="instead of --weights: the config's model at its random initialisation (seeded)")
    p.add_argument("--out", required=True, help="report folder (created)")
    p.add_argument("--history", help="a history.jsonl for the training curves (default: the one beside --weights)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled queries, identities and triples")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="encoder precision (default fp32)")
    p.add_argument("--batch-size", type=int, default=None, help="test batch size (default: from the config)")
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="train.KEY=VALUE or model.KEY=VALUE")
    return p.parse_args(argv)


def run(args: argparse.Namespace):
    model_cfg, cfg = load_config(args.config, args.overrides)
    device = torch.device(args.device)
    dataset = load_dataset(cfg.dataset, args.data_root)
    if args.untrained:
        torch.manual_seed(cfg.seed)
        model = build_model(model_cfg.replace(pretrained=None, num_classes=None,
                                            num_cameras=dataset.num_train_cams)).to(device)
    else:
        model = load_weights(args.weights, model_cfg, device)
    model.set_inference_precision(args.precision)
    history = args.history or (Path(args.weights).parent / "history.jsonl" if args.weights else None)
    if args.history and not Path(args.history).is_file():
        raise FileNotFoundError(f"--history {args.history} does not exist; give a run folder's history.jsonl")
    meta = {"weights": args.weights or "untrained (random init)", "config": args.config, "data": args.data_root}
    report = write_report(model, dataset, args.out, device, args.batch_size or cfg.eval_batch_size,
                          cfg.num_workers if args.num_workers is None else args.num_workers, history=history,
                          seed=args.seed, meta=meta, progress=not args.no_progress)
    print(f"{cfg.dataset} test, {model.inference_precision}:\n{format_metrics(report.metrics)}\n")
    print(f"{'zeroed':>8} | " + format_metrics(report.metrics["missing"]["none"]).splitlines()[0])
    for name, values in report.metrics["missing"].items():
        print(f"{name:>8} | " + format_metrics(values).splitlines()[2])
    print(f"report: {Path(args.out) / 'index.html'} ({len(report.files)} files, {report.seconds:.1f} s)")
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    keep_freed_memory()  # faster large CPU tensors (signal_core/runtime.py)
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
