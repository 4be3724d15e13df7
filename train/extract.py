"""Extract the features of a folder of triples or a dataset split into a feature folder:
``python -m train.extract --weights W (--triples DIR | --dataset NAME --data-root DIR --split S) --out FEATS``.

The feature folder (see ``signal_core/retrieval/feature_store.py``) holds the L2-normalised features in
shards, per row the triple's name, paths, identity, camera (and scene), and a manifest with the
weights' sha256 and the settings. A killed run continues where it stopped when started again with
the same arguments (finished shards are kept, not recomputed); other weights or settings are
refused. An unreadable image stops the run with its name (exit 2) unless ``--skip-bad``, which
skips the triple and lists it in the manifest. ``--engine onnxruntime|openvino [--onnx FILE]``
computes the features with an exported graph; the manifest records the engine and the graph's
sha256, so a resume with another engine or graph is refused. ``--registration NAME`` sets the model's
image-level registration of NIR / TIR to RGB (default: the checkpoint's own); the manifest records it
(and a saved ``--index`` too), so a resume with another is refused.

``--ray [auto|ADDRESS]`` computes the same folder on Ray (``pip install ".[scale]"``): a local Ray
(auto) or a cluster's, one model per actor (``--actors``; GPUs when the cluster has them); see
``signal_core/retrieval/ray_extraction.py`` and docs/scale.md.
``--index gallery.sgi|milvus:gallery.db|milvus://host:19530`` also saves the finished gallery in a
faiss index file or a Milvus collection (``signal_core/retrieval/gallery_open.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from signal_core import SignalConfig, load_weights, resolve_weights
from signal_core.data import DATASETS, DatasetError, TripleRecord, load_dataset, read_triples_folder
from signal_core.deploy.engine_choice import engine_for_model
from signal_core.model.precision import PRECISIONS
from signal_core.retrieval.feature_store import is_feature_folder, read_features, read_manifest
from signal_core.retrieval.folder_features import ExtractionSummary, extract_to_folder, registration_setting
from signal_core.retrieval.gallery_open import is_index_spec, write_index
from signal_core.retrieval.milvus_index import is_milvus_uri, parse_milvus_uri
from signal_core.utils.hashing import sha256_file
from signal_core.weights_source import WEIGHTS_HELP

from .cli import add_engine_arguments, add_registration_argument, check_engine_arguments, command_main, command_parser
from .flags import (
    MAX_PROCESSES,
    THREADS_HELP,
    default_device,
    device_flag,
    feature_folder_output,
    index_output,
    index_path,
    input_path,
    threads,
    weights_input,
    whole,
)

SPLITS = ("query", "gallery", "train")


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m train.extract", __doc__.split("\n")[0])
    p.add_argument("--weights", required=True, type=weights_input, help=WEIGHTS_HELP)
    p.add_argument("--triples", type=input_path, help="a triples folder: RGB/, NI/, TI/ with the same file names")
    p.add_argument("--dataset", choices=DATASETS,
                   help="dataset layout of --data-root; also the preset of an authors' .pth")
    p.add_argument("--data-root", type=input_path, help="the dataset folder itself (with --dataset and --split)")
    p.add_argument("--split", choices=SPLITS,
                   help="which split of the dataset (train identities are relabelled 0..C-1)")
    p.add_argument("--out", required=True, type=feature_folder_output, help="the feature folder to write (or resume)")
    p.add_argument("--batch-size", type=whole(1), default=32)
    p.add_argument("--shard-size", type=whole(1), default=512, help="triples per shard (the unit of resuming)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="encoder precision (default fp32; auto = bf16 where the device runs it fast; a resumed "
                        "run with auto keeps the folder's precision)")
    add_engine_arguments(p, "Recorded in the manifest")
    add_registration_argument(p, "the checkpoint's own; recorded in the manifest, a resume with another is refused")
    p.add_argument("--device", type=device_flag, default=default_device())
    p.add_argument("--num-workers", type=whole(0, MAX_PROCESSES), default=min(4, max(0, (os.cpu_count() or 1) - 1)),
                   help="image-decoding worker processes")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable triples (listed in the manifest)")
    p.add_argument("--threads", type=threads,
                   help=f"CPU threads of the model (default: torch's; {THREADS_HELP}; 1 can be much faster when other "
                        "processes keep the cores busy)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--ray", nargs="?", const="auto", metavar="auto|ADDRESS",
                   help="compute on Ray: auto starts a local Ray, ADDRESS (host:6379, ray://host:10001) joins a "
                        "cluster; the weights and images must be at the same paths on every node (--device and "
                        "--num-workers do not apply: each actor takes a GPU when the cluster has them)")
    p.add_argument("--actors", type=int, help="--ray: model actors (default: one per GPU, else one per --threads CPUs)")
    p.add_argument("--index", type=index_output, metavar="FILE.sgi|milvus:FILE.db|milvus://HOST:PORT",
                   help="when the folder is complete, also save the gallery in this faiss index file or Milvus "
                        "collection (append #name to choose the collection)")
    return p.parse_args(argv)


def read_records(args: argparse.Namespace) -> tuple[list[TripleRecord], dict]:
    """The triples to extract and the description of where they come from."""
    if bool(args.triples) == bool(args.data_root):
        raise ValueError("give either --triples DIR or --dataset NAME --data-root DIR --split SPLIT.")
    if args.triples:
        root = Path(args.triples).expanduser().resolve()  # absolute paths in the rows: usable from any folder
        return read_triples_folder(root), {"kind": "triples", "root": str(root)}
    if not (args.dataset and args.split):
        raise ValueError("--data-root needs --dataset (rgbnt201|rgbnt100|msvr310) and --split (query|gallery|train).")
    root = Path(args.data_root).expanduser().resolve()
    records = getattr(load_dataset(args.dataset, root), args.split)
    if not records:
        raise DatasetError(f"the {args.split} split of {args.data_root} is empty.")
    source = {"kind": "dataset", "name": args.dataset, "root": str(root), "split": args.split}
    return records, source


def check_arguments(args: argparse.Namespace) -> None:
    """The checks that need several flags at once (each flag's own range is checked while parsing)."""
    check_engine_arguments(args)
    if args.actors is not None and (args.ray is None or args.actors < 1):
        raise ValueError("--actors needs --ray and must be at least 1.")
    if args.ray is not None and args.engine != "torch":
        raise ValueError("--ray runs the torch model in every actor; drop --engine (or drop --ray).")
    if args.index and not is_index_spec(args.index):
        raise ValueError(f"--index '{args.index}': give a faiss index file ending in .sgi, milvus:FILE.db or "
                         "milvus://host:19530.")


def run(args: argparse.Namespace) -> ExtractionSummary:
    check_arguments(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    records, source = read_records(args)
    weights = resolve_weights(args.weights)  # a local file (Hub names: from the Hugging Face cache)
    if args.index:
        prepare_index_output(args.index)
    preset = SignalConfig.preset(args.dataset) if args.dataset else None
    device = torch.device("cpu" if args.ray is not None else args.device)  # with --ray the actors run the model
    model = load_weights(weights, preset, device, args.registration).eval()
    precision = args.precision
    if precision == "auto" and is_feature_folder(args.out):  # resume: keep the folder's resolved precision
        precision = read_manifest(args.out)["settings"].get("precision", "auto")
    precision = model.set_inference_precision(precision)
    settings = {"source": source, "precision": precision}
    engine = None
    if args.engine != "torch":
        engine = engine_for_model(model, args.engine, args.onnx, threads=args.threads)
        settings.update(engine.record(), precision=engine.precision)
    elif not (is_feature_folder(args.out) and "engine" not in read_manifest(args.out)["settings"]):
        settings.update(engine="torch", onnx_sha256=None)  # a folder from before engines existed: torch
    model_info = {"sha256": sha256_file(weights), "path": os.path.abspath(weights)}
    if args.ray is not None:
        from signal_core.retrieval.ray_extraction import ModelSource, RayOptions, extract_with_ray

        source = ModelSource(os.path.abspath(weights), args.dataset, settings["precision"], args.registration)
        options = RayOptions(address=args.ray, actors=args.actors, threads=args.threads or 1)
        summary = extract_with_ray(source, model.cfg, records, args.out, model_info, settings, options,
                                   args.batch_size, args.shard_size, args.skip_bad, progress=not args.no_progress)
    else:
        summary = extract_to_folder(model, records, args.out, model_info, settings, device, args.batch_size,
                                    args.num_workers, args.shard_size, args.skip_bad, progress=not args.no_progress,
                                    features_fn=None if engine is None else engine.features)
    precision = settings["precision"] if engine is None else f"{engine.kind} {engine.precision}"
    print(report(summary, precision))
    if args.index:
        save_index(args.index, summary, model_info["sha256"], settings["precision"], model.cfg)
    return summary


def prepare_index_output(spec: str) -> None:
    """Before the extraction, so that a bad ``--index`` stops the command before the work: the folder of a Milvus
    Lite file is created (as every output's folder is) and a Milvus URI is checked (the flag's type checked the
    rest: a .sgi file's place, the Lite file's name)."""
    if is_milvus_uri(spec):
        path = index_path(spec)
        if path is not None:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        parse_milvus_uri(spec)


def save_index(spec: str, summary: ExtractionSummary, model_sha256: str, precision: str, cfg: SignalConfig) -> None:
    """Save the finished feature folder's gallery in ``spec`` (a .sgi file or a milvus: URI)."""
    if not summary.complete:
        print(f"{spec}: not written, the feature folder is not complete; run the same command again.")
        return
    features, rows, _ = read_features(summary.out)
    if len(features) == 0:
        raise ValueError(f"the feature folder '{summary.out}' holds no features: no index to save.")
    index = write_index(spec, features, rows, {"model_sha256": model_sha256, "precision": precision,
                                               **registration_setting(cfg)})
    print(f"{spec}: gallery index of {len(index)} rows ({index.kind}).")


def report(summary: ExtractionSummary, precision: str) -> str:
    """A few lines on what the run did."""
    if summary.processed == 0 and summary.complete:
        return f"{summary.out}: already complete ({summary.count} features of {summary.planned} triples, {precision})."
    rate = summary.processed / summary.seconds if summary.seconds > 0 else 0.0
    lines = [(f"{summary.out}: {summary.count} features of {summary.planned} triples ({precision}); "
             f"{summary.processed} triples in {summary.seconds:.1f} s ({rate:.1f} triples/s), "
             f"{summary.shards_reused} shard(s) kept from an earlier run.")]
    if summary.skipped:
        names = ", ".join(s["name"] for s in summary.skipped[:10])
        lines.append(f"skipped {len(summary.skipped)} unreadable triple(s) (listed in manifest.json): {names}")
    return "\n".join(lines)


def main(argv=None) -> int:
    return command_main(parse_args, run, argv,
                        interrupted="finished shards are kept; run the same command again to resume.")


if __name__ == "__main__":
    sys.exit(main())
