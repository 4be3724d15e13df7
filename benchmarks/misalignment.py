"""Robustness to misaligned rigs: mAP / R1 of one or more models as each camera rig shifts NIR / TIR further.

The same test identities are generated (``train.synthetic``: seed, identities, per-image jitter fixed) at
every rig shift (``--shifts``, pixels per axis at 128 x 64, scaled with the model's input size: the
generator draws each camera's shift direction from the seed, so only its length changes), for each seed
of generated data (``--seeds``), and evaluated with the authors' protocol. A row of the table is

* ``--weights PATH[=REGISTRATION]``: one model, evaluated on every seed's data (REGISTRATION one of
  ``signal_core.config.REGISTRATIONS``: the same weights with image-level registration on or off; without
  it, the checkpoint's own setting); or
* ``--trained LABEL PATH[=REGISTRATION] ...``: one recipe trained with several seeds (at most as many as
  ``--seeds``): the i-th model is evaluated on the i-th seed's data, so each point's spread covers both the
  training seed and the data.

Writes ``misalignment.json`` (every cell, with each model's SHA-256), ``misalignment.md`` (mean +- sample
std over seeds per shift) and ``misalignment.png`` (mAP and R1 against the shift, the band is +- one std),
with wall time and CPU. Run again into the same ``--out``, it keeps the cells already there whose model
(SHA-256 and registration), seed and shift are asked for again, and evaluates only the others.

``python -m benchmarks.misalignment --weights assets/demo_model.safetensors=none
--weights assets/demo_model.safetensors=orientation --trained "augmentation only" A1 A2 A3
--trained "registration" R1 R2 R3 --out docs/misalignment``
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.engine_bench import cpu_flags
from benchmarks.inference_bench import machine_info
from signal_core import SignalModel, load_checkpoint, with_registration
from signal_core.config import REGISTRATIONS
from signal_core.data import load_dataset
from signal_core.utils.atomic import atomic_write, write_json
from signal_core.utils.hashing import sha256_file
from signal_core.viz.plots import save_figure
from train.protocol import evaluate_model
from train.synthetic.spec import SyntheticSpec
from train.synthetic.writer import generate

REFERENCE_SIDE = 64  # the shifts are given for 128 x 64 inputs (shorter side 64 px)
METRICS = ("mAP", "R1", "mINP")


def model_spec(text: str) -> tuple[str, str | None]:
    """``PATH`` or ``PATH=REGISTRATION`` -> (path, registration or None: the checkpoint's own)."""
    path, _, registration = text.rpartition("=")
    if path and registration in REGISTRATIONS:
        return path, registration
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a checkpoint file (give PATH or PATH=REGISTRATION with "
                                         f"REGISTRATION one of {', '.join(REGISTRATIONS)}).")
    return text, None


def load_model(path: str, registration: str | None) -> SignalModel:
    """The checkpoint, with ``registration`` in place of its own (registration has no weights)."""
    return with_registration(load_checkpoint(path), registration)


def shift_key(shift: float) -> str:
    return f"{shift:g}"


@dataclass
class Entry:
    """One model of a row: the row's label, the weights, the registration it is evaluated with, the seeds
    of data it is evaluated on."""

    row: str
    path: str
    model: SignalModel
    sha256: str
    seeds: list[int]

    @property
    def key(self) -> tuple:
        """What identifies one of its cells in a results file, with the seed and the shift."""
        return self.row, self.sha256, self.model.cfg.registration


def label(path: str, model: SignalModel) -> str:
    return f"{Path(path).name}, registration {model.cfg.registration}"


def entries(args) -> list[Entry]:
    """Every model to evaluate, with its row and seeds (the i-th of a ``--trained`` row: the i-th seed)."""
    out = []
    for path, registration in args.weights or []:
        model = load_model(path, registration)
        out.append(Entry(label(path, model), path, model, sha256_file(path), list(args.seeds)))
    for row, specs in args.trained or []:
        for seed, (path, registration) in zip(args.seeds, specs):
            out.append(Entry(row, path, load_model(path, registration), sha256_file(path), [seed]))
    return out


def benchmark_spec(size: tuple[int, int], seed: int, shift: float, args) -> SyntheticSpec:
    """The generated test split of one seed at one rig shift (given at 128 x 64) for inputs of ``size``."""
    scale = min(size) / REFERENCE_SIDE
    return SyntheticSpec(seed=seed, train_ids=1, test_ids=args.test_ids, height=size[0], width=size[1],
                         misalign=args.jitter * scale, rig_shift=shift * scale)


def ensure_data(spec: SyntheticSpec, root: Path) -> Path:
    """Generate ``spec`` into ``root`` unless the same spec is already there."""
    meta = root / "synthetic.json"
    if meta.is_file() and json.loads(meta.read_text()).get("spec") == _spec_dict(spec):
        return root
    generate(spec, root, progress=False, overwrite=meta.is_file())
    return root


def _spec_dict(spec: SyntheticSpec) -> dict:
    return json.loads(json.dumps(spec.__dict__))


def evaluate_all(models: list[Entry], args, done: dict[tuple, dict] | None = None) -> list[dict]:
    """One row per (model, seed, shift): its metrics in percent and the seconds the evaluation took; a cell
    of ``done`` (keyed by :func:`cell_key`) is taken as it is."""
    done = done or {}
    rows = []
    for seed in args.seeds:
        for shift in args.shifts:
            datasets: dict[tuple[int, int], object] = {}
            for entry in (e for e in models if seed in e.seeds):
                key = (*entry.key, seed, shift_key(shift))
                if key in done:
                    rows.append(done[key])
                    continue
                size = tuple(entry.model.cfg.image_size)
                if size not in datasets:
                    spec = benchmark_spec(size, seed, shift, args)
                    root = Path(args.data) / f"{size[0]}x{size[1]}" / f"seed{seed}_shift{shift_key(shift)}"
                    datasets[size] = load_dataset("rgbnt201", ensure_data(spec, root))
                start = time.perf_counter()
                result = evaluate_model(entry.model, datasets[size], torch.device("cpu"), args.batch_size, 0,
                                        progress=False).as_percent_dict()
                rows.append({"model": entry.row, "weights": Path(entry.path).name, "sha256": entry.sha256,
                             "registration": entry.model.cfg.registration, "seed": seed, "shift_px": shift,
                             "seconds": round(time.perf_counter() - start, 2),
                             **{m: round(float(result[m]), 2) for m in METRICS}})
                print(f"seed {seed}, shift {shift:g} px, {entry.row}: mAP {result['mAP']:.2f}, "
                      f"R1 {result['R1']:.2f}", flush=True)
    return rows


def shown(path: str) -> str:
    """A checkpoint as the results name it: its folder and file name (a run folder's epoch_016.safetensors is
    told apart by its run), never the machine's path to it; the SHA-256 of each row identifies the file."""
    return str(Path(Path(path).parent.name) / Path(path).name)


def cell_key(row: dict) -> tuple:
    """A results row's identity: the table row, the model's SHA-256 and registration, the seed and shift."""
    return row["model"], row.get("sha256"), row.get("registration"), row["seed"], shift_key(row["shift_px"])


def finished_cells(out: Path) -> dict[tuple, dict]:
    """The cells of an earlier run's ``misalignment.json`` in ``out`` (none if absent or unreadable)."""
    try:
        rows = json.loads((out / "misalignment.json").read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {cell_key(r): r for r in rows if isinstance(r, dict) and "sha256" in r}


def summarise(rows: list[dict]) -> dict:
    """model -> shift -> metric -> {mean, std (sample, over seeds), values}."""
    out: dict = {}
    for row in rows:
        cell = out.setdefault(row["model"], {}).setdefault(shift_key(row["shift_px"]), {m: [] for m in METRICS})
        for m in METRICS:
            cell[m].append(row[m])
    for shifts in out.values():
        for cell in shifts.values():
            for m, values in cell.items():
                cell[m] = {"mean": float(np.mean(values)), "values": values,
                           "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
    return out


def markdown(result: dict) -> str:
    """One table per metric: a row per model, a column per shift, mean +- std over the seeds."""
    shifts = [shift_key(s) for s in result["shifts_px"]]
    lines = []
    for metric in ("mAP", "R1"):
        lines += [f"| {metric} (mean +- std over seeds {', '.join(map(str, result['seeds']))}) | "
                  + " | ".join(f"{s} px" for s in shifts) + " |", "|---" * (len(shifts) + 1) + "|"]
        for name, per in result["summary"].items():
            count = len(per[shifts[0]][metric]["values"])
            name = name if count == len(result["seeds"]) else f"{name} (seeds {count} of {len(result['seeds'])})"
            lines.append(f"| {name} | " + " | ".join(f"{per[s][metric]['mean']:.2f} +- {per[s][metric]['std']:.2f}"
                                                    for s in shifts) + " |")
        lines.append("")
    m = result["machine"]
    kept = result.get("kept_cells", 0)
    lines.append(f"{result['test_ids']} test identities per seed, per-image jitter {result['jitter_px']:g} px. "
                 f"{len(result['rows'])} evaluations, {result.get('evaluation_seconds', 0):.0f} s in all"
                 + (f" ({kept} kept from an earlier run)" if kept else "")
                 + f"; wall time of the last run {result['wall_seconds']:.0f} s on {m['cpu']} ({m['cpu_count']} "
                 f"cores, {m['torch_threads']} torch threads; flags "
                 f"{', '.join(k for k, v in result['flags'].items() if v)}).")
    for row, specs in result.get("trained", {}).items():
        pairs = ", ".join(f"{Path(spec.rpartition('=')[0]).parent.name or spec} on seed {seed}"
                          for spec, seed in zip(specs, result["seeds"]))
        lines.append(f"\n{row}: one model per seed of data ({pairs}).")
    return "\n".join(lines) + "\n"


def figure(result: dict):
    """mAP and R1 against the rig shift, one line per model, band = mean +- std over seeds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    shifts = np.array(result["shifts_px"], float)
    for ax, metric in zip(fig.subplots(1, 2), ("mAP", "R1")):
        for name, per in result["summary"].items():
            mean = np.array([per[shift_key(s)][metric]["mean"] for s in result["shifts_px"]])
            std = np.array([per[shift_key(s)][metric]["std"] for s in result["shifts_px"]])
            ax.plot(shifts, mean, marker="o", label=name)
            ax.fill_between(shifts, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel("rig shift, max px per axis (at 128 x 64)")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Misaligned rigs: {len(result['seeds'])} seeds of generated data, "
                 f"{result['test_ids']} test identities each")
    return fig


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.misalignment", description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=model_spec, action="append", metavar="PATH[=REGISTRATION]",
                   help="a row: one checkpoint, optionally with the registration to evaluate it with, on every "
                        "seed (repeat for more rows)")
    p.add_argument("--trained", nargs="+", action="append", metavar=("LABEL", "PATH[=REGISTRATION]"),
                   help="a row: LABEL, then one checkpoint per training seed (at most as many as --seeds); the i-th "
                        "is evaluated on the i-th seed's data (repeat for more rows)")
    p.add_argument("--out", required=True, help="folder for misalignment.json / .md / .png")
    p.add_argument("--shifts", type=float, nargs="+", default=[0, 4, 8, 13, 16], help="rig shifts (px at 128 x 64)")
    p.add_argument("--seeds", type=int, nargs="+", default=[777, 778, 779], help="seeds of generated data")
    p.add_argument("--test-ids", type=int, default=40, help="test identities per seed")
    p.add_argument("--jitter", type=float, default=2.0, help="per-image NIR / TIR shift (px at 128 x 64)")
    p.add_argument("--data", help="where the generated data are kept and reused (default: OUT/data)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    args = p.parse_args(argv)
    if not args.weights and not args.trained:
        p.error("give at least one row: --weights PATH[=REGISTRATION] or --trained LABEL PATH ...")
    rows = []
    for label_and_paths in args.trained or []:
        row, paths = label_and_paths[0], label_and_paths[1:]
        if not 0 < len(paths) <= len(args.seeds):
            p.error(f"--trained {row!r}: {len(paths)} checkpoints for {len(args.seeds)} seeds "
                    f"({' '.join(map(str, args.seeds))}); give one checkpoint per seed, at most")
        try:
            rows.append((row, [model_spec(path) for path in paths]))
        except argparse.ArgumentTypeError as error:
            p.error(f"--trained {row!r}: {error}")
    args.trained = rows
    args.data = args.data or str(Path(args.out) / "data")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    out = Path(args.out)
    models = entries(args)
    done = finished_cells(out)
    rows = evaluate_all(models, args, done)
    kept = sum(cell_key(r) in done for r in rows)
    if kept:
        print(f"kept {kept} cells of the earlier {out / 'misalignment.json'}; evaluated {len(rows) - kept}")
    result = {"weights": [f"{shown(p)}={r or 'stored'}" for p, r in args.weights or []],
              "trained": {row: [f"{shown(p)}={r or 'stored'}" for p, r in specs] for row, specs in args.trained},
              "shifts_px": args.shifts,
              "seeds": args.seeds, "test_ids": args.test_ids, "jitter_px": args.jitter, "rows": rows,
              "summary": summarise(rows), "machine": machine_info(), "flags": cpu_flags(),
              "wall_seconds": round(time.time() - started, 1), "kept_cells": kept,
              "evaluation_seconds": round(sum(r["seconds"] for r in rows), 1)}
    table = markdown(result)
    write_json(out / "misalignment.json", result)
    atomic_write(out / "misalignment.md", lambda tmp: Path(tmp).write_text(table))
    save_figure(figure(result), out / "misalignment.png")
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
