"""The paper's ablations as multi-seed grids: ``python -m train.ablation --grid NAME``.

Grids (grids.py): ``table3`` (rows ``grids.ROWS``: baseline, + SIM, + SIM + GAM, full, full with the
GAM / LAM fixes of docs/alignment.md, and the fixed full model with matched LAM offsets), ``table4``
(SIM's union / intersection), ``table5`` (shared / per-modality offsets), ``fig5a`` (k1 sweep) and
``fig5b`` (alpha / beta sweep), each row against its reference row; the paper's values (paper.py)
beside ours and, for a sweep, a plot (plot.py). Each cell is trained with every seed by
``python -m train`` into its own run folder ``<out>/<row>/seed_<s>/``; the folder records its grid
(``grid.json``). Each table says its protocol: the last epoch, the labelled test-selected one, or the
labelled validation-selected one (held-out training identities, ``train.val_ids``).
The grid resumes (a killed grid continues where it stopped), refuses a grid folder trained with
another configuration (each cell's ``grid_cell.json``, record.py; ``--overwrite`` trains those cells
again), copies with ``--reuse DIR`` a cell finished in another grid folder with the same record instead of
training it (reuse.py), goes on past a failing cell (and exits 2 naming it) and writes ``ablation.json`` and
``ablation.md``: mean +- std per row, each seed's value, each module's paired difference with its
95 % t interval over seeds, and LAM's offset tracking (train/offsets.py) for the trained and the
untrained model.
"""
from .grid import COMPARISONS, FIX_MODEL, FIX_TRAIN, PROTOCOLS, ROWS, GridSpec, Row, run_grid
from .grids import GRIDS, Grid, build_grid
from .stats import mean_std, paired_difference, t_quantile_975
from .summary import markdown, summarise, write_summary

__all__ = ["COMPARISONS", "FIX_MODEL", "FIX_TRAIN", "GRIDS", "PROTOCOLS", "ROWS", "Grid", "GridSpec", "Row",
           "build_grid", "markdown", "mean_std", "paired_difference", "run_grid", "summarise",
           "t_quantile_975", "write_summary"]
