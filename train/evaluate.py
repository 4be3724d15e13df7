"""Evaluate weights on a dataset's test split:
``python -m train.evaluate --config train/configs/rgbnt201.yaml --data-root DIR --weights FILE``.

``--weights`` takes our ``.safetensors`` checkpoints, the authors' ``Signal_model.pth``, a Hub-style folder or a
Hub name (``hf-hub:owner/repo``, ``hf://owner/repo/file``: signal_core/weights_source.py);
``--untrained`` evaluates the config's architecture at its random initialisation (a baseline).
``--engine onnxruntime|openvino [--onnx FILE]`` computes the features with an exported graph
(``python -m train.export``; without ``--onnx`` the weights are exported fp32 on the fly into a cache).
Prints mAP, mINP, R1, R5, R10 (percent); ``--out FILE`` writes them as JSON.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from signal_core import build_model, load_weights, resolve_weights, with_registration
from signal_core.data import load_dataset
from signal_core.deploy.engine_choice import engine_for_model
from signal_core.model.complexity import complexity_dict, summary_line
from signal_core.model.precision import PRECISIONS
from signal_core.retrieval.split_features import MISSING_SETTINGS
from signal_core.utils.atomic import write_json
from signal_core.weights_source import WEIGHTS_HELP

from .cli import add_engine_arguments, add_registration_argument, check_engine_arguments, command_main, command_parser
from .config import load_config
from .flags import (
    MAX_PROCESSES,
    default_device,
    device_flag,
    input_path,
    output_file,
    output_folder,
    weights_input,
    whole,
)
from .offsets import format_tracking, lam_tracking
from .protocol import evaluate_model, format_metrics
from .report import check_report_folder, write_report


def parse_args(argv=None, report_command: bool = False) -> argparse.Namespace:
    """The flags of ``train.evaluate``; ``report_command``: those of ``train.report`` (``--out DIR`` is the
    report folder, there is no metrics JSON)."""
    prog = "python -m train.report" if report_command else "python -m train.evaluate"
    p = command_parser(prog, __doc__.split("\n")[0])
    p.add_argument("--config", required=True, type=input_path, help="YAML preset of the dataset")
    p.add_argument("--data-root", required=True, type=input_path, help="the dataset folder itself")
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--weights", type=weights_input, help=WEIGHTS_HELP.replace(" (with --dataset)", ""))
    weights.add_argument("--untrained", action="store_true",
                         help="instead of --weights: the config's model at its random initialisation "
                              "(seeded with train.seed), as a baseline")
    report_help = ("write the evaluation report into DIR: index.html, metrics.json with the seven missing-modality "
                   "settings, and the paper's figures as PNGs")
    if report_command:
        p.add_argument("--out", dest="report", metavar="DIR", required=True, type=output_folder, help=report_help)
        p.set_defaults(out=None, missing=None, rerank=False)
    else:
        p.add_argument("--out", type=output_file, help="write the metrics as JSON to this file")
        p.add_argument("--missing", choices=MISSING_SETTINGS, help="zero these modalities (missing-modality test)")
        p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (not used in the paper)")
        p.add_argument("--report", metavar="DIR", type=output_folder, help="also " + report_help)
    p.add_argument("--device", type=device_flag, default=default_device())
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="encoder precision at test time (default fp32, the reference numbers; auto = bf16 "
                        "where the device runs it fast)")
    add_engine_arguments(p, "With --report the metrics, rankings and similarity figures come from the engine; "
                            "the SIM / LAM drawings need the model's internals and use torch")
    add_registration_argument(p, "the checkpoint's own; for an authors' .pth the config's model.registration")
    p.add_argument("--batch-size", type=whole(1), default=None, help="test batch size (default: from the config)")
    p.add_argument("--num-workers", type=whole(0, MAX_PROCESSES), default=None)
    p.add_argument("--history", type=input_path,
                   help="--report: a history.jsonl for the training curves (default: beside --weights)")
    p.add_argument("--seed", type=whole(0), default=0,
                   help="--report: seed of the sampled queries, identities, triples")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="train.KEY=VALUE or model.KEY=VALUE")
    return p.parse_args(argv)


def load_model(weights: Path | None, model_cfg, cfg, dataset, device: torch.device, registration: str | None = None):
    """``weights`` (ours or the authors'), or, None (``--untrained``), the config's architecture at its seeded
    random init; with ``registration`` (``--registration``) in place of its own where given."""
    if weights is None:
        torch.manual_seed(cfg.seed)
        model = build_model(model_cfg.replace(pretrained=None, num_classes=None, num_cameras=dataset.num_train_cams))
        return with_registration(model.to(device), registration)
    return load_weights(weights, model_cfg, device, registration)


def run(args: argparse.Namespace) -> dict:
    if args.report:
        check_report_folder(Path(args.report))  # before the data and the model are loaded
    model_cfg, cfg = load_config(args.config, args.overrides)
    device = torch.device(args.device)
    dataset = load_dataset(cfg.dataset, args.data_root)
    if args.report and (args.missing or args.rerank):
        raise ValueError("--report evaluates every missing-modality setting without re-ranking: drop --missing "
                         "and --rerank, or run them without --report.")
    if args.history and not Path(args.history).is_file():
        raise FileNotFoundError(f"--history {args.history} does not exist; give a run folder's history.jsonl")
    check_engine_arguments(args)
    weights = None if args.untrained else resolve_weights(args.weights)  # Hub names: from the Hugging Face cache
    model = load_model(weights, model_cfg, cfg, dataset, device, args.registration)
    precision = model.set_inference_precision(args.precision)
    engine = engine_for_model(model, args.engine, args.onnx) if args.engine != "torch" else None
    features_fn = engine.features if engine is not None else None
    label = precision if engine is None else f"engine {engine.label()}"
    if model.cfg.registration != "none":
        label += f", registration {model.cfg.registration}"
    batch_size = cfg.eval_batch_size if args.batch_size is None else args.batch_size
    workers = cfg.num_workers if args.num_workers is None else args.num_workers
    if args.report:
        metrics = _report(args, weights, model, dataset, device, batch_size, workers, features_fn, label, cfg.seed)
    else:
        result = evaluate_model(model, dataset, device, batch_size, workers, missing=args.missing,
                                rerank=args.rerank, progress=not args.no_progress, features_fn=features_fn)
        metrics = result.as_percent_dict()
        missing = f" (missing: {args.missing})" if args.missing else ""
        print(f"{cfg.dataset} test{missing}, {result.num_valid_queries} queries, {label}:\n"
              f"{format_metrics(metrics)}")
    if args.out:
        write_json(args.out, metrics)
    return metrics


def _report(args: argparse.Namespace, weights: Path | None, model, dataset, device, batch_size: int, workers: int,
            features_fn=None, label: str = "fp32", untrained_seed: int | None = None) -> dict:
    """Write the report (train.report) and print its tables; returns its metrics."""
    history = args.history or (weights.parent / "history.jsonl" if weights is not None else None)
    meta = {"weights": args.weights or "untrained (random init)", "config": args.config, "data": args.data_root}
    if features_fn is not None:
        meta["engine"] = f"{label} (metrics and rankings; SIM / LAM drawings: torch)"
    tracking = lam_tracking(model, dataset, args.data_root, device, None if args.untrained else untrained_seed)
    if tracking is not None:
        lines = "; ".join(format_tracking(v, f"{k}: ") for k, v in tracking.items())
        meta["LAM offset tracking"] = lines.replace("\n", "; ")
    cost = complexity_dict(model)  # measured on one triple (signal_core/model/complexity.py)
    meta["complexity"] = summary_line(cost)
    extra = {"complexity": cost, **({"lam_offsets": tracking} if tracking is not None else {})}
    report = write_report(model, dataset, args.report, device, batch_size, workers, history=history,
                          seed=args.seed, meta=meta, progress=not args.no_progress, features_fn=features_fn,
                          extra_metrics=extra)
    print(f"{dataset.name} test, {label}:\n{format_metrics(report.metrics)}\n")
    print(f"{'zeroed':>8} | " + format_metrics(report.metrics["missing"]["none"]).splitlines()[0])
    for name, values in report.metrics["missing"].items():
        print(f"{name:>8} | " + format_metrics(values).splitlines()[2])
    if tracking is not None:
        print("LAM offsets against the true NIR / TIR shifts:\n"
              + "\n".join(format_tracking(v, f"{k}: ") for k, v in tracking.items()))
    print(f"report: {Path(args.report) / 'index.html'} ({len(report.files)} files, {report.seconds:.1f} s)")
    return report.metrics


def main(argv=None, report_command: bool = False) -> int:
    """``python -m train.evaluate``; ``report_command``: ``python -m train.report`` (``--out`` is the folder)."""
    return command_main(lambda a: parse_args(a, report_command), run, argv)


if __name__ == "__main__":
    sys.exit(main())
