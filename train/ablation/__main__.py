"""``python -m train.ablation --grid table3 --config train/configs/alignment.yaml --data-root DIR --out runs/ablation
--seeds 3 [--reuse OTHER_GRID_FOLDER ...]``; grids: table3, table4, table5, fig5a, fig5b (grids.py); --reuse:
reuse.py."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import command_main, command_parser
from ..config import load_config
from ..flags import input_path, output_folder, whole
from .grid import PROTOCOLS, GridSpec, run_grid
from .grids import GRIDS, build_grid
from .reuse import reuse_folders
from .summary import write_summary


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m train.ablation",
                       "Train one of the paper's ablation grids over several seeds (resumable) and write "
                       "ablation.json, ablation.md and, for a sweep, <grid>.png. A failing cell is reported and the "
                       "others go on; the command then exits 2.")
    p.add_argument("--grid", choices=GRIDS, default="table3",
                   help="table3 (modules), table4 (union / intersection), table5 (shared offsets), fig5a (k1 "
                        "sweep), fig5b (alpha / beta sweep); a grid folder holds one grid")
    p.add_argument("--config", required=True, type=input_path, help="training YAML, e.g. train/configs/alignment.yaml")
    p.add_argument("--data-root", required=True, type=input_path, help="a benchmark from python -m train.synthetic")
    p.add_argument("--out", required=True, type=output_folder,
                   help="grid folder: one run folder per cell, the summary files")
    p.add_argument("--seeds", default="3", help="a count N (seeds 1..N) or a comma list, e.g. 1,2,3")
    p.add_argument("--rows", help="comma list of the grid's rows (default: all; see ablation.md for their names)")
    p.add_argument("--protocol", choices=tuple(PROTOCOLS), default="last",
                   help="the epoch each cell reports: last (default); test-best, the authors' TEST-SELECTED "
                        "epoch (optimistic; needs cells trained with train.eval_every=1); val-best, the epoch "
                        "of the best mAP on held-out training identities (needs train.val_ids=N "
                        "train.eval_every=1)")
    p.add_argument("--jobs", type=whole(1, 8), default=1, help="cells trained at once (1..8)")
    p.add_argument("--threads", type=whole(1, 64), default=1, help="torch threads per training process (1..64)")
    p.add_argument("--summary-only", action="store_true", help="train nothing: summarise the finished cells")
    p.add_argument("--overwrite", action="store_true",
                   help="train again the cells of --out that were trained with another --config, overrides or "
                        "--data-root (without it such a grid folder is refused)")
    p.add_argument("--reuse", action="append", type=input_path, default=[], metavar="DIR",
                   help="another grid folder (repeatable): a cell finished there with the same record (resolved "
                        "config, seed, benchmark) is copied instead of trained, e.g. the reference row of table4 "
                        "into table5, fig5a and fig5b")
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
    if not Path(args.config).is_file():
        raise ValueError(f"config file not found: {args.config}")
    bad = [o for o in args.overrides if not o.startswith(("model.", "train.")) or "=" not in o
           or o.startswith(("train.seed=", "train.output_dir="))]
    if bad:
        raise ValueError(f"overrides must look like train.epochs=2 (seed and output_dir are the grid's): {bad}")
    grid = build_grid(args.grid, load_config(args.config, list(args.overrides))[0])
    rows = tuple(grid.rows) if args.rows is None else tuple(r.strip() for r in args.rows.split(",") if r.strip())
    unknown = [r for r in rows if r not in grid.rows]
    if unknown or not rows:
        raise ValueError(f"--rows: unknown row(s) {unknown} of grid {grid.name}; choose from {', '.join(grid.rows)}.")
    if not (Path(args.data_root) / "synthetic.json").is_file():
        raise ValueError("--data-root must be a benchmark from python -m train.synthetic (its synthetic.json "
                         "holds the true shifts the offsets are measured against).")
    return GridSpec(args.config, args.data_root, Path(args.out), rows, _seeds(args.seeds), tuple(args.overrides),
                    args.threads, args.jobs, args.overwrite, grid, args.protocol, reuse_folders(args.reuse))


def run(args: argparse.Namespace) -> dict:
    """Train the grid's missing cells, then summarise the finished ones (failed cells are listed as unfinished).

    Raises:
        ValueError: bad flags, a grid folder of another configuration, or failed cells (after the summary).
    """
    spec = spec_from_args(args)
    failures = [] if args.summary_only else run_grid(spec)
    json_path, md_path = write_summary(spec)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    if failures:
        raise ValueError(f"{len(failures)} of {len(spec.cells())} cells failed, the others are kept: "
                         f"{'; '.join(failures[:3])}{'; ...' if len(failures) > 3 else ''}. Fix the cause and run "
                         "the same command again to train them.")
    return {}


def main(argv=None) -> int:
    return command_main(parse_args, run, argv, interrupted="finished cells are kept; run the same command again "
                                                           "to resume the grid")


if __name__ == "__main__":
    sys.exit(main())
