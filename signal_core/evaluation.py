"""Old name of :mod:`signal_core.metrics` (kept so that existing imports keep working)."""
from .metrics import RankResult, evaluate_rank, pairwise_distance, re_ranking

__all__ = ["RankResult", "evaluate_rank", "pairwise_distance", "re_ranking"]
