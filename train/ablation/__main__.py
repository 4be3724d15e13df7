"""``python -m train.ablation --config train/configs/alignment.yaml --data-root DIR --out runs/ablation --seeds 3``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import command_main
from .grid import ROWS, GridSpec, run_grid
from .summary import write_summary


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.ablation",
                                description="Train the paper's Table 3 grid over several seeds (resumable) and "
                                            "write ablation.json and ablation.md.")
    p.add_argument("--config", required=True, help="training YAML, e.g. train/configs/alignment.yaml")
    p.add_argument("--data-root", required=True, help="a benchmark from python -m train.synthetic")
    p.add_argument("--out", required=True, help="grid folder: one run folder per cell, the summary files")
    p.add_argument("--seeds", default="3", help="a count N (seeds 1..N) or a comma list, e.g. 1,2,3")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma list of rows from {', '.join(ROWS)}")
    p.add_argument("--jobs", type=int, default=1, help="cells trained at once (1..8)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training process (1..64)")
    p.add_argument("--summary-only", action="store_true", help="train nothing: summarise the finished cells")
    p.add_argument("overrides", nargs="*", help="train.KEY=VALUE or model.KEY=VALUE for every cell")
    return p.parse_args(argv)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        if "," not in text:
            n = int(text)
            if not 1 <= n <= 100:
                raise ValueError
            return tuple(range(1, n + 1))
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--seeds must be a count 1..100 or a comma list of integers, got {text!r}.") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must list distinct integers, got {text!r}.")
    return seeds


def spec_from_args(args: argparse.Namespace) -> GridSpec:
    rows = tuple(r.strip() for r in args.rows.split(",") if r.strip())
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        raise ValueError(f"--rows: unknown row(s) {unknown}; choose from {', '.join(ROWS)}.")
    if not 1 <= args.jobs <= 8 or not 1 <= args.threads <= 64:
        raise ValueError("--jobs must be in 1..8 and --threads in 1..64.")
    if not Path(args.config).is_file():
        raise ValueError(f"config file not found: {args.config}")
    if not (Path(args.data_root) / "synthetic.json").is_file():
        raise ValueError("--data-root must be a benchmark from python -m train.synthetic (its synthetic.json "
                         "holds the true shifts the offsets are measured against).")
    bad = [o for o in args.overrides if not o.startswith(("model.", "train.")) or "=" not in o
           or o.startswith(("train.seed=", "train.output_dir="))]
    if bad:
        raise ValueError(f"overrides must look like train.epochs=2 (seed and output_dir are the grid's): {bad}")
    return GridSpec(args.config, args.data_root, Path(args.out), rows, _seeds(args.seeds), tuple(args.overrides),
                    args.threads, args.jobs)


def run(args: argparse.Namespace) -> dict:
    spec = spec_from_args(args)
    if not args.summary_only:
        run_grid(spec)
    json_path, md_path = write_summary(spec)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return {}


def main(argv=None) -> int:
    return command_main(parse_args, run, argv, interrupted="finished cells are kept; run the same command again "
                                                           "to resume the grid")


if __name__ == "__main__":
    sys.exit(main())
