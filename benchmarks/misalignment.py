"""Robustness to misaligned rigs: mAP / R1 of one or more models as each camera rig shifts NIR / TIR further.

The same test identities are generated (``train.synthetic``: seed, identities, per-image jitter fixed) at
every rig shift (``--shifts``, pixels per axis at 128 x 64, scaled with the model's input size: the
generator draws each camera's shift direction from the seed, so only its length changes), for each seed
of generated data (``--seeds``); each model (``--weights PATH`` or ``PATH=REGISTRATION``, with
REGISTRATION one of ``signal_core.config.REGISTRATIONS``: the same weights with image-level registration
on or off; without it, the checkpoint's own setting) is evaluated on each with the authors' protocol.
Writes ``misalignment.json`` (every cell), ``misalignment.md`` (mean +- sample std over seeds per shift)
and ``misalignment.png`` (mAP and R1 against the shift, the band is +- one std), with wall time and CPU.

``python -m benchmarks.misalignment --weights assets/demo_model.safetensors=none
--weights assets/demo_model.safetensors=orientation --out docs/misalignment``
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.engine_bench import cpu_flags
from benchmarks.inference_bench import machine_info
from signal_core import SignalModel, load_checkpoint, with_registration
from signal_core.config import REGISTRATIONS
from signal_core.data import load_dataset
from signal_core.utils.atomic import atomic_write, write_json
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


def label(path: str, model: SignalModel) -> str:
    return f"{Path(path).name}, registration {model.cfg.registration}"


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


def evaluate_all(models: list[tuple[str, SignalModel]], args) -> list[dict]:
    """One row per (model, seed, shift): its metrics in percent and the seconds the evaluation took."""
    rows = []
    for seed in args.seeds:
        for shift in args.shifts:
            datasets: dict[tuple[int, int], object] = {}
            for name, model in models:
                size = tuple(model.cfg.image_size)
                if size not in datasets:
                    spec = benchmark_spec(size, seed, shift, args)
                    root = Path(args.data) / f"{size[0]}x{size[1]}" / f"seed{seed}_shift{shift_key(shift)}"
                    datasets[size] = load_dataset("rgbnt201", ensure_data(spec, root))
                start = time.perf_counter()
                result = evaluate_model(model, datasets[size], torch.device("cpu"), args.batch_size, 0,
                                        progress=False).as_percent_dict()
                rows.append({"model": name, "seed": seed, "shift_px": shift,
                             "seconds": round(time.perf_counter() - start, 2),
                             **{m: round(float(result[m]), 2) for m in METRICS}})
                print(f"seed {seed}, shift {shift:g} px, {name}: mAP {result['mAP']:.2f}, R1 {result['R1']:.2f}",
                      flush=True)
    return rows


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
            lines.append(f"| {name} | " + " | ".join(f"{per[s][metric]['mean']:.2f} +- {per[s][metric]['std']:.2f}"
                                                    for s in shifts) + " |")
        lines.append("")
    m = result["machine"]
    lines.append(f"{result['test_ids']} test identities per seed, per-image jitter {result['jitter_px']:g} px; "
                 f"wall time {result['wall_seconds']:.0f} s on {m['cpu']} ({m['cpu_count']} cores, "
                 f"{m['torch_threads']} torch threads; flags {', '.join(k for k, v in result['flags'].items() if v)}).")
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
    p.add_argument("--weights", type=model_spec, action="append", required=True, metavar="PATH[=REGISTRATION]",
                   help="a checkpoint, optionally with the registration to evaluate it with (repeat for more)")
    p.add_argument("--out", required=True, help="folder for misalignment.json / .md / .png")
    p.add_argument("--shifts", type=float, nargs="+", default=[0, 4, 8, 13, 16], help="rig shifts (px at 128 x 64)")
    p.add_argument("--seeds", type=int, nargs="+", default=[777, 778, 779], help="seeds of generated data")
    p.add_argument("--test-ids", type=int, default=40, help="test identities per seed")
    p.add_argument("--jitter", type=float, default=2.0, help="per-image NIR / TIR shift (px at 128 x 64)")
    p.add_argument("--data", help="where the generated data are kept and reused (default: OUT/data)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    args = p.parse_args(argv)
    args.data = args.data or str(Path(args.out) / "data")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    models = []
    for path, registration in args.weights:
        model = load_model(path, registration)
        models.append((label(path, model), model))
    rows = evaluate_all(models, args)
    result = {"weights": [f"{p}={r or 'stored'}" for p, r in args.weights], "shifts_px": args.shifts,
              "seeds": args.seeds, "test_ids": args.test_ids, "jitter_px": args.jitter, "rows": rows,
              "summary": summarise(rows), "machine": machine_info(), "flags": cpu_flags(),
              "wall_seconds": round(time.time() - started, 1)}
    out = Path(args.out)
    table = markdown(result)
    write_json(out / "misalignment.json", result)
    atomic_write(out / "misalignment.md", lambda tmp: Path(tmp).write_text(table))
    save_figure(figure(result), out / "misalignment.png")
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
