"""The grid's results: ``ablation.json`` (every cell, per-row statistics, paired differences, the protocol,
each row's complexity, the paper's values and the cells copied by ``--reuse``) and ``ablation.md`` (mean
+- std per row with each seed's value and the paper's, then each row's paired difference with its
reference, and which cells were copied), and for a sweep ``<grid>.png`` (plot.py)."""
from __future__ import annotations

import math
from pathlib import Path

import yaml

from signal_core import SignalConfig
from signal_core.model.complexity import config_complexity
from signal_core.utils.atomic import atomic_write, write_json

from ..run_folder import CONFIG_FILE
from .grid import PROTOCOLS, GridSpec, check_grid, read_cell
from .paper import paper_values
from .reuse import reused_from
from .stats import mean_std, paired_difference

METRICS = ("mAP", "R1", "R5")


def summarise(spec: GridSpec) -> dict:
    """Collect the finished cells of ``spec`` (unfinished ones are listed as missing).

    Raises:
        ValueError: a cell was trained with another configuration than ``spec``'s (never mixed into a table).
    """
    records = check_grid(spec)
    grid = spec.grid
    tokens = SignalConfig.from_dict(_model_section(next(iter(records.values())))).num_patches if records else 0
    paper = paper_values(grid.name, tokens)
    rows, missing, reused = {}, [], {}
    for key in [k for k in grid.rows if k in spec.rows]:  # table order, whatever order the grid ran in
        row = grid.rows[key]
        seeds = {}
        for s in spec.seeds:
            cell = read_cell(spec.cell_dir(key, s), spec.protocol)
            if cell is None:
                missing.append(f"{key}/seed_{s}")
                continue
            seeds[s] = cell
            origin = reused_from(spec.cell_dir(key, s))
            if origin:
                reused[f"{key}/seed_{s}"] = origin
        stats = {m: dict(zip(("mean", "std"), mean_std([c["metrics"][m] for c in seeds.values()]))) for m in METRICS}
        rows[key] = {"label": row.label, "model": row.model, "train": row.train, "seeds": seeds, "stats": stats,
                     "offsets": _offset_stats(seeds) if row.uses_lam else None,
                     "paper": dict(zip(("mAP", "R1", "source"), paper[key])) if key in paper else None,
                     "complexity": _row_complexity(spec, key)}
    comparisons = []
    for key, ref in grid.comparisons:
        if key in rows and ref in rows:
            values = {m: paired_difference({s: c["metrics"][m] for s, c in rows[key]["seeds"].items()},
                                           {s: c["metrics"][m] for s, c in rows[ref]["seeds"].items()})
                      for m in METRICS}
            comparisons.append({"row": key, "reference": ref, **values})
    return {"grid": grid.name, "title": grid.title, "protocol": spec.protocol,
            "protocol_text": PROTOCOLS[spec.protocol], "config": spec.config, "seeds": list(spec.seeds),
            "overrides": list(spec.overrides), "rows": rows, "comparisons": comparisons, "missing": missing,
            "reused": reused,
            "series": [{"label": c.label, "x_label": c.x_label, "points": [list(p) for p in c.points]}
                       for c in grid.series]}


def _model_section(record: dict) -> dict:
    """The ``model.*`` fields of a cell record, as SignalConfig fields."""
    return {k.split(".", 1)[1]: v for k, v in record["config"].items() if k.startswith("model.")}


def _row_complexity(spec: GridSpec, key: str) -> dict | None:
    """The complexity (signal_core/model/complexity.py) of a row's model, from the first of its cells that
    ``python -m train`` wrote a resolved config into (the identities and cameras of the data); None before."""
    for s in spec.seeds:
        path = spec.cell_dir(key, s) / CONFIG_FILE
        if path.is_file():
            cfg = SignalConfig.from_dict(yaml.safe_load(path.read_text())["model"])
            return config_complexity(cfg, cfg.num_classes or 1, cfg.num_cameras or 0)
    return None


def _offset_stats(seeds: dict) -> dict:
    """Per model state and shifted modality: mean (and std) over seeds of the relative-offset r and slope."""
    out = {}
    for state in ("trained", "untrained"):
        for mod in ("nir", "tir"):
            for k in ("r", "slope"):
                values = [c["offsets"][state][mod]["relative"][k] for c in seeds.values() if "offsets" in c]
                values = [v for v in values if not math.isnan(v)]
                mean, std = mean_std(values)
                out[f"{state}_{mod}_{k}"] = {"mean": mean, "std": std, "values": values}
    return out


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def markdown(summary: dict) -> str:
    """The Markdown tables of a summary."""
    seeds = summary["seeds"]
    lines = [f"{summary['title']} (grid {summary['grid']}).", "",
             f"Protocol: {summary['protocol_text']}.", "",
             f"Seeds {', '.join(map(str, seeds))}; mean +- sample std over seeds, each seed's mAP in brackets; the "
             "paper's mAP / R1 (RGBNT201, ViT-B/16; another benchmark, shown for the direction of the effect).", "",
             "| row | mAP | R1 | R5 | mAP per seed | paper mAP / R1 |", "|---|---|---|---|---|---|"]
    for row in summary["rows"].values():
        st = row["stats"]
        per = ", ".join(_f(row["seeds"][s]["metrics"]["mAP"]) if s in row["seeds"] else "-" for s in seeds)
        paper = f"{row['paper']['mAP']} / {row['paper']['R1']}" if row["paper"] else "-"
        lines.append(f"| {row['label']} | " + " | ".join(f"{_f(st[m]['mean'])} +- {_f(st[m]['std'])}" for m in METRICS)
                     + f" | ({per}) | {paper} |")
    lines += ["", "Paired differences over seeds (row - reference), mean with its 95 % t interval; "
              "'yes' when the interval excludes 0.", "",
              "| row | vs | d mAP [95 % CI] | per seed | separates | d R1 [95 % CI] | paper d mAP |",
              "|---|---|---|---|---|---|---|"]
    for c in summary["comparisons"]:
        m, r1 = c["mAP"], c["R1"]
        row, ref = summary["rows"][c["row"]], summary["rows"][c["reference"]]
        paper = f"{row['paper']['mAP'] - ref['paper']['mAP']:+.1f}" if row["paper"] and ref["paper"] else "-"
        lines.append(f"| {row['label']} | {ref['label']} | "
                     f"{_f(m['mean'])} [{_f(m['ci95'][0])}, {_f(m['ci95'][1])}] | "
                     f"{', '.join(_f(d) for d in m['differences'])} | {'yes' if m['separates'] else 'no'} | "
                     f"{_f(r1['mean'])} [{_f(r1['ci95'][0])}, {_f(r1['ci95'][1])}] | {paper} |")
    off_rows = [(k, r) for k, r in summary["rows"].items() if r["offsets"]]
    if off_rows:
        lines += ["", "LAM offset tracking on the test split: Pearson r (slope) of each modality's mean offset "
                  "relative to RGB's against the true shift, mean over seeds.", "",
                  "| row | NIR r trained | NIR slope | TIR r trained | TIR slope | NIR r untrained | TIR r untrained |",
                  "|---|---|---|---|---|---|---|"]
        for _, row in off_rows:
            o = row["offsets"]
            keys = ("trained_nir_r", "trained_nir_slope", "trained_tir_r", "trained_tir_slope", "untrained_nir_r",
                    "untrained_tir_r")
            lines.append(f"| {row['label']} | " + " | ".join(_f(o[k]["mean"], 3) for k in keys) + " |")
    loss_rows = [(r["label"], [c.get("final_losses", {}) for c in r["seeds"].values()])
                 for r in summary["rows"].values()]
    loss_rows = [(label, finals) for label, finals in loss_rows if any("gam" in f or "lam" in f for f in finals)]
    if loss_rows:
        lines += ["", "Logged (weighted) alignment losses of the last epoch, mean over seeds (GAM at chance = "
                  "alpha x ln B).", "", "| row | GAM | LAM |", "|---|---|---|"]
        for label, finals in loss_rows:
            gam, lam = ([f[k] for f in finals if k in f] for k in ("gam", "lam"))
            cells = [_f(mean_std(values)[0], 4) if values else "-" for values in (gam, lam)]
            lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines += _complexity_lines(summary)
    if summary["reused"]:
        lines += ["", "Cells copied by --reuse from the grid folder that trained them (the same record: resolved "
                  "config, seed and benchmark): " + "; ".join(f"{k} from {v}" for k, v in summary["reused"].items())
                  + "."]
    if summary["missing"]:
        lines += ["", f"Unfinished cells: {', '.join(summary['missing'])}."]
    return "\n".join(lines) + "\n"


def _complexity_lines(summary: dict) -> list[str]:
    """Each row's complexity, measured from its model (signal_core/model/complexity.py)."""
    measured = [(r["label"], r["complexity"]) for r in summary["rows"].values() if r["complexity"]]
    if not measured:
        return []
    lines = ["", "Complexity measured from each row's model: learnable parameters (all, frozen ones included, in "
             "brackets) and forward GFLOPs of one triple.", "",
             "| row | parameters (M) | SIM + GAM + LAM (M) | MiB fp32 | GFLOPs | SIM + GAM + LAM GFLOPs |",
             "|---|---|---|---|---|---|"]
    for label, c in measured:
        t, a = c["total"], c["added"]
        lines.append(f"| {label} | {t['params_m']:.4f} ({t['params_all'] / 1e6:.4f}) | {a['params_m']:.4f} "
                     f"({a['params_all'] / 1e6:.4f}) | {t['mib_fp32']:.3f} | {t['gflops']:.4f} | {a['gflops']:.4f} |")
    return lines


def write_summary(spec: GridSpec) -> tuple[Path, Path]:
    """Write ``ablation.json`` and ``ablation.md`` (and a sweep's ``<grid>.png``) into the grid folder; returns
    the paths of the first two."""
    from .plot import write_sweep_plot

    summary = summarise(spec)
    text = markdown(summary)
    md = atomic_write(spec.out / "ablation.md", lambda tmp: Path(tmp).write_text(text))
    if spec.grid.series:
        write_sweep_plot(summary, spec.out / f"{spec.grid.name}.png")
    return write_json(spec.out / "ablation.json", _json_safe(summary), indent=1, sort_keys=False), md


def _json_safe(value):
    """NaN -> None (strict JSON), recursively; int dict keys -> str."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
