"""ReID metrics: CMC / mAP / mINP ranking, feature distances and k-reciprocal re-ranking.

    rank       evaluate_rank -> RankResult (camera or scene protocol, chunked, exact stable ties)
    distance   pairwise_distance (squared Euclidean of L2-normalised features)
    rerank     re_ranking (k-reciprocal, Zhong et al. 2017)
    sorting    exact stable row ranking of distance blocks (float32 keys, binary search)
    arrays     input conversion and sparse-row helpers
"""
from .distance import pairwise_distance
from .rank import RankResult, evaluate_rank
from .rerank import re_ranking

__all__ = ["RankResult", "evaluate_rank", "pairwise_distance", "re_ranking"]
