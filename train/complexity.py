"""The complexity column of Table 3 for any config, measured from the model:
``python -m train.complexity --config train/configs/rgbnt201.yaml [model.KEY=VALUE ...] [--out FILE.json]``.

Prints a Markdown table of learnable parameters (count, millions, MiB in fp32), all parameters and
forward GFLOPs of one (RGB, NIR, TIR) triple per module (backbone, SIM, GAM, LAM, heads), counted
on a randomly initialised model of the config (signal_core/model/complexity.py; no weights are
loaded, the counts do not depend on them); ``--out`` writes the same numbers as JSON.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from signal_core.model.complexity import config_complexity, markdown_table
from signal_core.utils.atomic import write_json

from .cli import command_main, command_parser
from .config import load_config
from .flags import input_path, output_file, whole

# RGBNT201's training split (train_171): 171 identities, 4 cameras; a config's own values win
RGBNT201_CLASSES, RGBNT201_CAMERAS = 171, 4


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m train.complexity",
                       "Count learnable parameters and forward FLOPs per module of a config's model.")
    p.add_argument("--config", required=True, type=input_path, help="training YAML, e.g. train/configs/rgbnt201.yaml")
    p.add_argument("--num-classes", type=whole(1), default=RGBNT201_CLASSES,
                   help=f"identities of the heads when the config leaves them unset (default {RGBNT201_CLASSES}, "
                        "RGBNT201's training split)")
    p.add_argument("--num-cameras", type=whole(0), default=RGBNT201_CAMERAS,
                   help=f"camera embeddings when the config leaves them unset (default {RGBNT201_CAMERAS})")
    p.add_argument("--out", type=output_file, help="also write the numbers as JSON here")
    p.add_argument("overrides", nargs="*", help="model.KEY=VALUE (or train.KEY=VALUE) overrides, e.g. model.k1=64")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    model_cfg, _ = load_config(args.config, args.overrides)
    table = config_complexity(model_cfg, args.num_classes, args.num_cameras)
    print(f"{args.config} {' '.join(args.overrides)}".strip() + f": image {model_cfg.image_size[0]}x"
          f"{model_cfg.image_size[1]}, {model_cfg.num_patches} tokens per modality\n")
    print(markdown_table(table))
    if args.out:
        write_json(Path(args.out), {"config": str(args.config), "overrides": list(args.overrides),
                                    "modules": table}, indent=1)
        print(f"wrote {args.out}")
    return table


def main(argv=None) -> int:
    return command_main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
