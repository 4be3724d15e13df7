"""Turn weights into a Hub-style folder, ready to publish:
``python -m train.convert --weights Signal_model.pth --dataset rgbnt201 --out DIR``.

``--weights`` is the authors' ``Signal_model.pth`` (read with ``torch.load(weights_only=True)``, keys
renamed by signal_core/checkpoint.py's table, every key used; ``--dataset`` gives its preset) or one of
our ``.safetensors`` checkpoints, named any way ``--weights`` takes (a file, ``hf://owner/repo/file``, ...).
``DIR`` receives ``model.safetensors``, ``config.json`` and a model card ``README.md`` that says where the
weights came from (the file and its sha256), the training data, the metrics (``--metrics``: the JSON of
``python -m train.evaluate --out`` on these weights) with their protocol, the paper and the licence
(signal_core/hub_folder.py). The folder is then loaded back and its features compared with the source's.
Publish it with ``hf upload owner/name DIR`` and load it anywhere with ``--weights hf-hub:owner/name``.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import torch

from signal_core import CardFacts, SignalConfig, load_weights, resolve_weights, save_pretrained
from signal_core.data import DATASETS
from signal_core.hub_folder import write_card
from signal_core.model_card import METRIC_NAMES
from signal_core.utils.hashing import sha256_file
from signal_core.weights_source import HUB_WEIGHTS

from .cli import command_main, command_parser
from .flags import input_path, output_folder, weights_input

_REPO_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m train.convert", __doc__.split("\n")[0])
    p.add_argument("--weights", required=True, type=weights_input,
                   help="the authors' Signal_model.pth (with --dataset) or our .safetensors checkpoint; a path, "
                        "hf://owner/repo/file or hf-hub:owner/repo")
    p.add_argument("--dataset", choices=DATASETS,
                   help="the dataset the weights were trained on (the preset of an authors' .pth; the card's data)")
    p.add_argument("--out", required=True, type=output_folder, help="the Hub-style folder to write")
    p.add_argument("--metrics", type=input_path,
                   help="a metrics JSON of these weights (python -m train.evaluate --out), for the card")
    p.add_argument("--protocol", help="how --metrics were measured, if not train.evaluate's default protocol")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the weights, config and card of an --out folder that already holds files")
    p.add_argument("--origin", help="where the source file was obtained (a URL, a release), said on the card")
    p.add_argument("--repo-id", metavar="OWNER/NAME", help="the Hub repository it will be published as (the card's "
                   "loading lines name it)")
    return p.parse_args(argv)


def read_metrics(path: str) -> dict[str, float]:
    """mAP, mINP, R1, R5, R10 (percent) from a ``train.evaluate --out`` JSON (at least mAP and R1)."""
    try:
        data = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--metrics {path}: not a readable JSON file ({' '.join(str(exc).split())}).") from None
    found = {k: data[k] for k in METRIC_NAMES if isinstance(data, dict) and k in data}
    bad = [k for k, v in found.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 100]
    if not {"mAP", "R1"} <= found.keys() or bad:
        raise ValueError(f"--metrics {path}: give the JSON of python -m train.evaluate --out (mAP, mINP, R1, R5, R10 "
                         f"in percent{'; not percentages: ' + ', '.join(bad) if bad else ''}).")
    return {k: float(v) for k, v in found.items()}


def card_facts(args: argparse.Namespace, source: Path, source_sha256: str, official: bool,
               max_diff: float, metrics: dict[str, float] | None) -> CardFacts:
    """What the card says: the source file and its sha256, how it was converted, the data and metrics."""
    origin = f", obtained from {args.origin}" if args.origin else ""
    kind = "the authors' released checkpoint" if official else "the Signal checkpoint"
    how = ("read with `torch.load(weights_only=True)`, its keys renamed to signal_core's by an explicit table "
           "(every key used, every parameter filled)" if official else "its tensors copied as they are")
    text = (f"Converted with `python -m train.convert` from {kind} `{source.name}` (sha256 `{source_sha256}`"
            f"{origin}): {how}. Loaded back from this folder, its features equal the source's (largest absolute "
            f"difference {max_diff:.1e} on two random triples).")
    return CardFacts(source=text, dataset=args.dataset, metrics=metrics, protocol=args.protocol,
                     repo_id=args.repo_id)


def largest_difference(a, b) -> float:
    """Largest absolute difference of two models' features on two seeded random triples."""
    g = torch.Generator().manual_seed(0)
    images = [torch.randn(2, 3, *a.cfg.image_size, generator=g) for _ in range(3)]
    with torch.no_grad():
        return float((a.extract_features(*images) - b.extract_features(*images)).abs().max())


def check_out(out: Path, source: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that holds the source weights, or other files without ``overwrite`` (never lose a file)."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    if source.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"--out {out} holds --weights {source}, which writing the folder would replace: give a new "
                         "folder.")
    if not overwrite:
        raise ValueError(f"--out {out} already holds files: give a new folder, or --overwrite to replace its "
                         f"{HUB_WEIGHTS}, config.json and README.md.")


def run(args: argparse.Namespace) -> Path:
    if args.repo_id is not None and not re.match(_REPO_ID, args.repo_id):
        raise ValueError(f"--repo-id '{args.repo_id}': write owner/name (letters, digits, '.', '_', '-').")
    metrics = read_metrics(args.metrics) if args.metrics else None  # before the model is loaded
    source = resolve_weights(args.weights)
    check_out(Path(args.out).expanduser(), source, args.overwrite)
    official = source.suffix != ".safetensors"
    if official and not args.dataset:
        raise ValueError(f"{source.name} is the authors' checkpoint: give --dataset ({'|'.join(DATASETS)}), the "
                         "preset it was trained with.")
    model = load_weights(source, SignalConfig.preset(args.dataset) if args.dataset else None).eval()
    out, source_sha256 = Path(args.out).expanduser(), sha256_file(source)
    save_pretrained(model, out, card_facts(args, source, source_sha256, official, math.nan, metrics))
    max_diff = largest_difference(model, load_weights(out).eval())
    if not max_diff <= 1e-6:
        raise ValueError(f"{out}: the folder's features differ from the source's by {max_diff:.1e}; not usable.")
    write_card(out, model.cfg, card_facts(args, source, source_sha256, official, max_diff, metrics))
    print(f"{out}: {HUB_WEIGHTS} (sha256 {sha256_file(out / HUB_WEIGHTS)}), config.json, README.md; its features "
          f"equal {source.name}'s (largest difference {max_diff:.1e}). Publish: hf upload "
          f"{args.repo_id or 'OWNER/NAME'} {out}")
    return out


def main(argv=None) -> int:
    return command_main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
