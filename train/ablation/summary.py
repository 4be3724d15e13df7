"""The grid's results: ``ablation.json`` (every cell, per-row statistics, paired differences) and a
Markdown table (mean +- std per row with each seed's value, then each module's paired difference)."""
from __future__ import annotations

import math
from pathlib import Path

from signal_core.utils.atomic import atomic_write, write_json

from .grid import COMPARISONS, ROWS, GridSpec, check_grid, read_cell
from .stats import mean_std, paired_difference

METRICS = ("mAP", "R1", "R5")


def summarise(spec: GridSpec) -> dict:
    """Collect the finished cells of ``spec`` (unfinished ones are listed as missing).

    Raises:
        ValueError: a cell was trained with another configuration than ``spec``'s (never mixed into a table).
    """
    check_grid(spec)
    rows, missing = {}, []
    for key in [k for k in ROWS if k in spec.rows]:  # table order, whatever order the grid ran in
        row = ROWS[key]
        seeds = {}
        for s in spec.seeds:
            cell = read_cell(spec.cell_dir(key, s))
            if cell is None:
                missing.append(f"{key}/seed_{s}")
            else:
                seeds[s] = cell
        stats = {m: dict(zip(("mean", "std"), mean_std([c["metrics"][m] for c in seeds.values()]))) for m in METRICS}
        rows[key] = {"label": row.label, "model": row.model, "train": row.train, "seeds": seeds, "stats": stats,
                     "offsets": _offset_stats(seeds) if row.uses_lam else None}
    comparisons = []
    for key, ref in COMPARISONS:
        if key in rows and ref in rows:
            values = {m: paired_difference({s: c["metrics"][m] for s, c in rows[key]["seeds"].items()},
                                           {s: c["metrics"][m] for s, c in rows[ref]["seeds"].items()})
                      for m in METRICS}
            comparisons.append({"row": key, "reference": ref, **values})
    return {"config": spec.config, "seeds": list(spec.seeds), "overrides": list(spec.overrides),
            "rows": rows, "comparisons": comparisons, "missing": missing}


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
    lines = [f"Seeds {', '.join(map(str, seeds))}; mean +- sample std over seeds, each seed's mAP in brackets.", "",
             "| row | mAP | R1 | R5 | mAP per seed |", "|---|---|---|---|---|"]
    for row in summary["rows"].values():
        st = row["stats"]
        per = ", ".join(_f(row["seeds"][s]["metrics"]["mAP"]) if s in row["seeds"] else "-" for s in seeds)
        lines.append(f"| {row['label']} | " + " | ".join(f"{_f(st[m]['mean'])} +- {_f(st[m]['std'])}" for m in METRICS)
                     + f" | ({per}) |")
    lines += ["", "Paired differences over seeds (row - reference), mean with its 95 % t interval; "
              "'yes' when the interval excludes 0.", "",
              "| added | vs | d mAP [95 % CI] | per seed | separates | d R1 [95 % CI] |", "|---|---|---|---|---|---|"]
    for c in summary["comparisons"]:
        m, r1 = c["mAP"], c["R1"]
        lines.append(f"| {summary['rows'][c['row']]['label']} | {summary['rows'][c['reference']]['label']} | "
                     f"{_f(m['mean'])} [{_f(m['ci95'][0])}, {_f(m['ci95'][1])}] | "
                     f"{', '.join(_f(d) for d in m['differences'])} | {'yes' if m['separates'] else 'no'} | "
                     f"{_f(r1['mean'])} [{_f(r1['ci95'][0])}, {_f(r1['ci95'][1])}] |")
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
    if summary["missing"]:
        lines += ["", f"Unfinished cells: {', '.join(summary['missing'])}."]
    return "\n".join(lines) + "\n"


def write_summary(spec: GridSpec) -> tuple[Path, Path]:
    """Write ``ablation.json`` and ``ablation.md`` into the grid folder; returns their paths."""
    summary = summarise(spec)
    text = markdown(summary)
    md = atomic_write(spec.out / "ablation.md", lambda tmp: Path(tmp).write_text(text))
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
