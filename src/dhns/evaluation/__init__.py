"""Filtered link-prediction evaluation: the numbers every model in the pipeline is judged by."""

from dhns.evaluation.categories import RELATION_CATEGORIES, UNSEEN_CATEGORY, categorize_relations, partner_averages
from dhns.evaluation.filtered import (
    FilterIndex,
    LinkScorer,
    build_filter_index,
    evaluate_link_prediction,
    rank_triples,
)
from dhns.evaluation.ranks import TIE_POLICIES, count_candidates, metrics_from_ranks, ranks_from_scores
from dhns.evaluation.summary import (
    HEADLINE_SECTIONS,
    TripleRanks,
    split_headline,
    summarize_by_category,
    summarize_ranks,
    summarize_subset,
    summarize_without_self_loops,
    summarize_without_unseen,
)

__all__ = [
    "HEADLINE_SECTIONS",
    "RELATION_CATEGORIES",
    "TIE_POLICIES",
    "UNSEEN_CATEGORY",
    "FilterIndex",
    "LinkScorer",
    "TripleRanks",
    "build_filter_index",
    "categorize_relations",
    "count_candidates",
    "evaluate_link_prediction",
    "metrics_from_ranks",
    "partner_averages",
    "rank_triples",
    "ranks_from_scores",
    "split_headline",
    "summarize_by_category",
    "summarize_ranks",
    "summarize_subset",
    "summarize_without_self_loops",
    "summarize_without_unseen",
]
