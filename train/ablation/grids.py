"""The named grids of ``python -m train.ablation --grid NAME``: the paper's ablation tables and sweeps.

* ``table3``: the modules (baseline, + SIM, + SIM + GAM, full) and this project's fixes of GAM / LAM
  (docs/alignment.md); each row against the one it adds to. Its rows take the config's own k1 and
  loss weights, as the grids trained before grids had names.
* ``table4``: SIM's masks combined by union (the reference) or intersection (``selection``).
* ``table5``: one offset sampler per modality (the reference) or one shared (``share_offsets``).
* ``fig5a``: kept tokens k1 at 1/4, 3/8, ..., 8/8 of the model's N tokens per modality.
* ``fig5b``: GAM's loss weight alpha on + SIM + GAM (beta unused), and LAM's beta on the full model
  with alpha = 0.2, each at 0, 0.1, 0.2, 0.5 and 1.

Except in table3, every row is the paper's reference model (full, union, one sampler per modality,
k1 = 80 of 128 tokens scaled to the model's token count N, alpha = beta = 0.2) with one setting
changed, and is compared with its reference row (the same seeds, paired).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from signal_core import SignalConfig

# The fixes of docs/alignment.md, named once: model fields and training fields.
FIX_MODEL = {"offset_channels": 2, "reference_points": "centred", "lam_detach": True,
             "gam_standardise": True, "gam_learn_tau": False}
FIX_TRAIN = {"lam_lr_factor": 3.0}
_OFF = {"use_sim": False, "use_gam": False, "use_lam": False}
PAPER_K1, PAPER_TOKENS = 80, 128  # RGBNT201: 80 of its 16 x 8 tokens kept
K1_FRACTIONS = (2, 3, 4, 5, 6, 7, 8)  # eighths of N
WEIGHTS = (0.0, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class Row:
    """One row of a table: a name (also its folder), a label and the overrides it trains with."""

    key: str
    label: str
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)

    @property
    def uses_lam(self) -> bool:
        return bool(self.model.get("use_lam", True))

    def overrides(self) -> list[str]:
        """``model.KEY=VALUE`` / ``train.KEY=VALUE`` arguments of ``python -m train``."""
        def text(v) -> str:
            return str(v).lower() if isinstance(v, bool) else str(v)
        return ([f"model.{k}={text(v)}" for k, v in self.model.items()]
                + [f"train.{k}={text(v)}" for k, v in self.train.items()])


@dataclass(frozen=True)
class Series:
    """One curve of a sweep: its label, x-axis label, and (row key, x) per point."""

    label: str
    x_label: str
    points: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Grid:
    """A named grid: its rows in table order, the paired comparisons (row, reference) and, for a sweep, its
    curves."""

    name: str
    title: str
    rows: dict[str, Row]
    comparisons: tuple[tuple[str, str], ...]
    series: tuple[Series, ...] = ()


ROWS = {row.key: row for row in (
    Row("baseline", "baseline", dict(_OFF)),
    Row("sim", "+ SIM", {**_OFF, "use_sim": True}),
    Row("sim_gam", "+ SIM + GAM", {**_OFF, "use_sim": True, "use_gam": True}),
    Row("full", "full (SIM + GAM + LAM)", {"use_sim": True, "use_gam": True, "use_lam": True}),
    Row("full_fix", "full, GAM / LAM fixed", {"use_sim": True, "use_gam": True, "use_lam": True, **FIX_MODEL},
        dict(FIX_TRAIN)),
    Row("full_matched", "full fixed, matched LAM offsets",
        {"use_sim": True, "use_gam": True, "use_lam": True, **FIX_MODEL, "lam_offsets": "matched"}, dict(FIX_TRAIN)),
)}
# (row, reference row): the paired differences reported, each "what the row adds"
COMPARISONS = (("sim", "baseline"), ("sim_gam", "sim"), ("full", "sim_gam"), ("full_fix", "sim_gam"),
               ("full_fix", "full"), ("full_matched", "full_fix"))
TABLE3 = Grid("table3", "Table 3: the modules", ROWS, COMPARISONS)
GRIDS = ("table3", "table4", "table5", "fig5a", "fig5b")


def scaled_k1(tokens: int) -> int:
    """The paper's k1 = 80 of 128 tokens, scaled to ``tokens`` per modality (at least 1)."""
    return max(1, round(PAPER_K1 * tokens / PAPER_TOKENS))


def reference_model(tokens: int) -> dict:
    """The paper's reference row: full model, union, one sampler per modality, k1 scaled, alpha = beta = 0.2."""
    return {"use_sim": True, "use_gam": True, "use_lam": True, "selection": "union", "share_offsets": False,
            "k1": scaled_k1(tokens), "alpha": 0.2, "beta": 0.2}


def _pair(name: str, title: str, ref: Row, other: Row) -> Grid:
    return Grid(name, title, {ref.key: ref, other.key: other}, ((other.key, ref.key),))


def _sweep(name: str, title: str, series: list[tuple[str, str, float, list[tuple[Row, float]]]]) -> Grid:
    """Sweep rows of several series; each series' points compared with its row at ``reference x``."""
    rows, comparisons, curves = {}, [], []
    for label, x_label, ref_x, points in series:
        ref = next(r.key for r, x in points if x == ref_x)
        rows.update({r.key: r for r, _ in points})
        comparisons += [(r.key, ref) for r, x in points if r.key != ref]
        curves.append(Series(label, x_label, tuple((r.key, x) for r, x in points)))
    return Grid(name, title, rows, tuple(comparisons), tuple(curves))


def build_grid(name: str, model_cfg: SignalConfig) -> Grid:
    """The grid ``name`` for a model of ``model_cfg`` (the resolved ``--config`` and overrides: it gives the
    token count N that k1 is scaled to).

    Raises:
        ValueError: an unknown name.
    """
    n = model_cfg.num_patches
    ref = reference_model(n)
    if name == "table3":
        return TABLE3
    if name == "table4":
        return _pair(name, "Table 4: SIM's masks, union or intersection",
                     Row("union", "union (reference)", ref), Row("intersection", "intersection",
                                                                {**ref, "selection": "intersection"}))
    if name == "table5":
        return _pair(name, "Table 5: LAM's offsets, one sampler per modality or one shared",
                     Row("non_sharing", "non-sharing (reference)", ref),
                     Row("sharing", "sharing", {**ref, "share_offsets": True}))
    if name == "fig5a":
        ks = sorted({max(1, round(n * f / 8)) for f in K1_FRACTIONS} | {ref["k1"]})
        points = [(Row(f"k1_{k}", f"k1 = {k} of {n}", {**ref, "k1": k}), k / n) for k in ks]
        return _sweep(name, f"Fig. 5 (a): kept tokens k1 (N = {n}; reference k1 = {ref['k1']})",
                      [("full model", f"kept tokens k1 / N (N = {n} here, 128 in the paper)", ref["k1"] / n,
                        points)])
    if name == "fig5b":
        sim_gam = {**ref, "use_lam": False}
        alphas = [(Row(f"alpha_{a}", f"+ SIM + GAM, alpha = {a}", {**sim_gam, "alpha": a}), a) for a in WEIGHTS]
        betas = [(Row(f"beta_{b}", f"full, alpha = 0.2, beta = {b}", {**ref, "beta": b}), b) for b in WEIGHTS]
        return _sweep(name, "Fig. 5 (b): loss weights alpha (GAM) and beta (LAM)",
                      [("alpha (+ SIM + GAM)", "loss weight", 0.2, alphas),
                       ("beta (full, alpha = 0.2)", "loss weight", 0.2, betas)])
    raise ValueError(f"--grid: unknown grid {name!r}; choose from {', '.join(GRIDS)}.")
