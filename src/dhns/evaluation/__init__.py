"""Filtered link-prediction evaluation: the numbers every model in the pipeline is judged by."""

from dhns.evaluation.filtered import (
    FilterIndex,
    LinkScorer,
    build_filter_index,
    evaluate_link_prediction,
    rank_triples,
    summarize_ranks,
)
from dhns.evaluation.ranks import TIE_POLICIES, metrics_from_ranks, ranks_from_scores

__all__ = [
    "TIE_POLICIES",
    "FilterIndex",
    "LinkScorer",
    "build_filter_index",
    "evaluate_link_prediction",
    "metrics_from_ranks",
    "rank_triples",
    "ranks_from_scores",
    "summarize_ranks",
]
