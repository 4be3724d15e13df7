"""Statistics over seeds: mean +- sample standard deviation, and paired differences with a t interval.

The rows of an ablation are trained with the same seeds (same initialisation draw, same batches), so
the effect of a module is measured per seed, row minus reference row, and summarised by the mean of
those paired differences with its 95 % Student-t interval over seeds.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

# two-sided 95 % Student-t quantiles t_{0.975, df} for df = 1..30
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """t_{0.975} with ``df`` degrees of freedom (table up to 30, Cornish-Fisher expansion beyond)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}.")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; NaN for fewer than two values)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def paired_difference(row: Mapping[int, float], reference: Mapping[int, float]) -> dict:
    """Paired difference ``row - reference`` over the seeds both have.

    Args:
        row, reference: seed -> value.

    Returns:
        {"seeds", "differences" (per seed), "mean", "std", "ci95": [low, high] (NaN below two seeds),
        "separates": whether the interval excludes 0}.
    """
    seeds = sorted(set(row) & set(reference))
    diffs = [row[s] - reference[s] for s in seeds]
    mean, std = mean_std(diffs)
    if len(diffs) >= 2:
        half = t_quantile_975(len(diffs) - 1) * std / math.sqrt(len(diffs))
        low, high = mean - half, mean + half
    else:
        low = high = float("nan")
    return {"seeds": seeds, "differences": diffs, "mean": mean, "std": std, "ci95": [low, high],
            "separates": bool(len(diffs) >= 2 and (low > 0 or high < 0))}
