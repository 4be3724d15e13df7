"""Does image-level registration find the NIR / TIR rig shift? Every candidate estimator measured on generated data.

For each test triple of one or more generated benchmarks (``python -m train.synthetic --rig-shift 13`` or
``--preset alignment``, one folder per seed of generated data), each candidate of
``signal_core.model.registration`` (gradient magnitude or orientation, plain or phase correlation, with or
without a Hann window) estimates the displacement of NIR and TIR relative to RGB at the model input's full
resolution; it is compared with the shift ``synthetic.json`` records, as ``train.offsets`` compares LAM's
offsets: Pearson r and least-squares slope (x and y pooled, each axis centred; and per axis), the share of
estimates off by more than 2 px and of fallbacks to 0 (peak ratio under ``registration_min_confidence``).
A control pairs each NIR / TIR with another triple's RGB (what a localiser of the person in a centred crop
would still follow). The cost: one ``register`` call against one encoder pass of a model (the bundled demo
model by default) on the same batch, interleaved, median per triple, with the CPU and its flags.

``python -m benchmarks.registration --data-root DIR [DIR ...] [--out FILE.json] [--markdown FILE.md]``
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.engine_bench import cpu_flags
from benchmarks.inference_bench import machine_info
from signal_core import SignalConfig, SignalModel, load_checkpoint
from signal_core.data import TripleDataset, build_transforms, load_dataset
from signal_core.model.registration import METHODS, estimate_shift, search_radius
from signal_core.utils.atomic import atomic_write, write_json
from train.offsets import fit, true_shifts

DEFAULTS = SignalConfig()  # the config's registration defaults (window, confidence)
MOVED = (("nir", 1), ("tir", 2))
DEMO_WEIGHTS = "assets/demo_model.safetensors"


def load_split(root: str) -> tuple[dict, np.ndarray, tuple[int, int]]:
    """The test split of a generated benchmark at its own image size: a batch of every triple, the true shifts."""
    spec = json.loads((Path(root) / "synthetic.json").read_text())["spec"]
    size = (int(spec["height"]), int(spec["width"]))
    records = load_dataset("rgbnt201", root).query
    batch = next(iter(DataLoader(TripleDataset(records, build_transforms(size, train=False)),
                                 batch_size=len(records))))
    return batch, true_shifts(root, records), size


def tracking(batch: dict, true: np.ndarray, size, method: str, window: bool, shuffled: bool = False) -> dict:
    """Per moved modality: the fit of the found displacement on the true shift, errors and fallbacks."""
    rgb = batch["rgb"]
    if shuffled:  # another triple's RGB (a fixed derangement: the same for every method)
        rgb = rgb[torch.roll(torch.arange(len(rgb)), 7)]
    out = {}
    for name, index in MOVED:
        found, confidence = estimate_shift(rgb, batch[name], method, search_radius(size, DEFAULTS.registration_window),
                                           DEFAULTS.registration_min_confidence, window)
        error = np.abs(found.numpy() - true[:, index]).max(axis=1)
        result = fit(found.numpy(), true[:, index])
        result.update(off_2px=float((error > 2).mean()), median_error_px=float(np.median(error)),
                      fallback=float((confidence < DEFAULTS.registration_min_confidence).float().mean()),
                      mean_shift_px=float(np.hypot(*true[:, index].T).mean()))
        out[name] = result
    return out


def candidates() -> list[tuple[str, str, bool, bool]]:
    """(row label, method, Hann window, shuffled-RGB control) in the order of the table."""
    rows = [(f"{m}{', Hann window' if w else ''}", m, w, False) for m in METHODS for w in (False, True)]
    return rows + [("orientation, RGB of another triple (control)", "orientation", False, True)]


@torch.no_grad()
def cost(model, label: str, batch_size: int, repeats: int) -> dict:
    """Median ms per triple of ``register`` (``orientation``) and of the encoder on one random batch,
    interleaved, and their ratio."""
    model = type(model)(model.cfg.replace(registration="orientation", pretrained=None)).eval()
    size = tuple(model.cfg.image_size)
    g = torch.Generator().manual_seed(0)
    rgb, nir, tir = (torch.randn(batch_size, 3, *size, generator=g) for _ in range(3))
    times: dict[str, list[float]] = {"register": [], "encoder": []}
    for _ in range(repeats + 1):
        for name, call in (("register", lambda: model.register(rgb, nir, tir)),
                           ("encoder", lambda: model.encode(rgb, nir, tir))):
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1e3 / batch_size)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}  # the first round warms up
    return {"model": label, "image_size": list(size), "batch": batch_size, "repeats": repeats,
            "register_ms_per_triple": med["register"], "encoder_ms_per_triple": med["encoder"],
            "ratio": med["register"] / med["encoder"], "torch_threads": torch.get_num_threads()}


def costs(weights: str) -> list[dict]:
    """The cost against the bundled model's encoder (batch 32) and a ViT-B/16 at 256 x 128 (random weights,
    the rgbnt201 preset, batch 4)."""
    vit_b = SignalModel(SignalConfig.preset("rgbnt201", num_classes=None))
    return [cost(load_checkpoint(weights), weights, 32, 7), cost(vit_b, "ViT-B/16 (rgbnt201 preset)", 4, 3)]


def summary(per_root: dict[str, dict]) -> dict:
    """Mean and sample std over the data folders of every number of every row and modality."""
    first = next(iter(per_root.values()))
    out: dict = {}
    for row, mods in first.items():
        out[row] = {}
        for name, values in mods.items():
            out[row][name] = {}
            for key in values:
                vals = [per_root[root][row][name][key] for root in per_root]
                out[row][name][key] = {"mean": float(np.mean(vals)),
                                       "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                                       "values": vals}
    return out


def markdown(result: dict) -> str:
    """The summary table (mean over the data folders; per axis r / slope) and the cost line."""
    lines = ["| estimator | NIR r | NIR slope | NIR r x / y | NIR slope x / y | NIR > 2 px | TIR r | TIR slope "
             "| TIR r x / y | TIR slope x / y | TIR > 2 px |", "|---" * 11 + "|"]
    for row, mods in result["summary"].items():
        cells = []
        for name, _ in MOVED:
            m = {k: v["mean"] for k, v in mods[name].items()}
            cells += [f"{m['r']:.3f}", f"{m['slope']:.3f}", f"{m['r_x']:.2f} / {m['r_y']:.2f}",
                      f"{m['slope_x']:.2f} / {m['slope_y']:.2f}", f"{100 * m['off_2px']:.1f} %"]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    for c in result.get("cost", []):
        lines.append(f"\nCost per triple, {c['model']} ({c['image_size'][0]} x {c['image_size'][1]}, "
                     f"batch {c['batch']}, "
                     f"{c['torch_threads']} torch thread(s)): registration {c['register_ms_per_triple']:.2f} ms, "
                     f"encoder {c['encoder_ms_per_triple']:.2f} ms, ratio {c['ratio']:.3f} "
                     f"({result['machine']['cpu']}; flags {', '.join(k for k, v in result['flags'].items() if v)}).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.registration", description=__doc__.split("\n")[0])
    p.add_argument("--data-root", nargs="+", required=True, help="generated benchmarks (one per seed of data)")
    p.add_argument("--weights", default=DEMO_WEIGHTS, help="the model whose encoder the cost is compared with")
    p.add_argument("--no-cost", action="store_true", help="skip the timing")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", help="write everything as JSON")
    p.add_argument("--markdown", help="write the table as Markdown")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    per_root = {}
    names = [Path(r).name for r in args.data_root]  # the results name folders, not machine paths, where unique
    keys = names if len(set(names)) == len(names) else list(args.data_root)
    for key, root in zip(keys, args.data_root):
        batch, true, size = load_split(root)
        per_root[key] = {label: tracking(batch, true, size, method, window, shuffled)
                         for label, method, window, shuffled in candidates()}
    result = {"data_roots": keys, "per_root": per_root, "summary": summary(per_root),
              "window": DEFAULTS.registration_window, "min_confidence": DEFAULTS.registration_min_confidence,
              "machine": machine_info(), "flags": cpu_flags()}
    if not args.no_cost:
        result["cost"] = costs(args.weights)
    result["wall_seconds"] = round(time.time() - started, 1)
    table = markdown(result)
    print(table + f"({len(args.data_root)} data folders, {result['wall_seconds']} s)")
    if args.out:
        write_json(args.out, result)
    if args.markdown:
        atomic_write(args.markdown, lambda tmp: Path(tmp).write_text(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
