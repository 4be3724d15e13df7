"""ReID metrics: CMC / mAP / mINP ranking, feature distances and k-reciprocal re-ranking.

    rank       evaluate_rank -> RankResult (camera or scene protocol, chunked, exact stable ties)
    distance   pairwise_distance (squared Euclidean of L2-normalised features)
    rerank     re_ranking (k-reciprocal, Zhong et al. 2017)
    parts      part_scores: a similarity split by feature part (RGB / NIR / TIR class tokens, fused SIM tokens)
    sorting    exact stable row ranking of distance blocks (float32 keys, binary search)
    arrays     input conversion and sparse-row helpers
"""
from .distance import pairwise_distance
from .parts import PART_NAMES, PartScore, PartScores, feature_layout, part_scores
from .rank import RankResult, evaluate_rank
from .rerank import re_ranking

__all__ = ["PART_NAMES", "PartScore", "PartScores", "RankResult", "evaluate_rank", "feature_layout",
           "pairwise_distance", "part_scores", "re_ranking"]
