"""Rank and metric semantics on tiny inputs whose answers are obvious on paper."""

from __future__ import annotations

import math

import pytest
import torch

from dhns.evaluation import TIE_POLICIES, metrics_from_ranks, ranks_from_scores


def _as_lists(ranks: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {policy: ranks[policy].tolist() for policy in TIE_POLICIES}


def test_tie_policies_are_the_pykeen_three() -> None:
    assert TIE_POLICIES == ("optimistic", "realistic", "pessimistic")


def test_ranks_count_strictly_greater_and_greater_equal() -> None:
    scores = torch.tensor(
        [
            [0.5, 0.9, 0.5, 0.5, 0.1],  # true 0: one strictly better (1), two ties (2, 3)
            [1.0, 2.0, 3.0, 4.0, 5.0],  # true 4: best, no ties
            [7.0, 7.0, 7.0, 7.0, 7.0],  # true 2: tied with all four others
        ]
    )
    ranks = ranks_from_scores(scores, torch.tensor([0, 4, 2]))
    assert _as_lists(ranks) == {
        "optimistic": [2.0, 1.0, 1.0],
        "realistic": [3.0, 1.0, 3.0],
        "pessimistic": [4.0, 1.0, 5.0],
    }
    assert all(r.dtype == torch.float64 for r in ranks.values())


def test_filtered_candidates_are_excluded_but_never_the_true_one() -> None:
    scores = torch.tensor([[0.9, 0.5, 0.95, 0.5, 0.1]])
    # Entity 2 outranks the true entity 0 and is filtered; the mask also marks the true entity,
    # which must not remove it (an implementation that masked it out would give rank 5 or fail).
    mask = torch.tensor([[True, False, True, False, False]])
    ranks = ranks_from_scores(scores, torch.tensor([0]), mask)
    assert _as_lists(ranks) == {"optimistic": [1.0], "realistic": [1.0], "pessimistic": [1.0]}
    unfiltered = ranks_from_scores(scores, torch.tensor([0]))
    assert unfiltered["optimistic"].tolist() == [2.0]


def test_filtered_tie_does_not_count() -> None:
    scores = torch.tensor([[0.3, 0.3, 0.3]])
    mask = torch.tensor([[False, True, False]])
    ranks = ranks_from_scores(scores, torch.tensor([0]), mask)
    assert _as_lists(ranks) == {"optimistic": [1.0], "realistic": [1.5], "pessimistic": [2.0]}


def test_infinities_are_ordinary_scores() -> None:
    inf = math.inf
    scores = torch.tensor([[-inf, 0.0, -inf, inf], [inf, inf, 0.0, -inf]])
    ranks = ranks_from_scores(scores, torch.tensor([0, 0]))
    assert _as_lists(ranks) == {
        "optimistic": [3.0, 1.0],
        "realistic": [3.5, 1.5],
        "pessimistic": [4.0, 2.0],
    }


def test_nan_in_unfiltered_candidate_or_true_score_raises_with_row_count() -> None:
    nan = math.nan
    scores = torch.tensor([[0.1, nan, 0.3], [0.2, 0.1, 0.0], [nan, 0.1, 0.2]])
    with pytest.raises(ValueError, match="2 of 3 rows"):
        ranks_from_scores(scores, torch.tensor([0, 0, 0]))


def test_nan_in_filtered_candidate_is_ignored() -> None:
    scores = torch.tensor([[0.1, math.nan, 0.3]])
    mask = torch.tensor([[False, True, False]])
    ranks = ranks_from_scores(scores, torch.tensor([0]), mask)
    assert ranks["pessimistic"].tolist() == [2.0]


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        ranks_from_scores(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        ranks_from_scores(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        ranks_from_scores(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError):
        ranks_from_scores(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.zeros(2, 4, dtype=torch.bool))


def test_metrics_exact_values() -> None:
    metrics = metrics_from_ranks(torch.tensor([1.0, 2.0, 4.0, 20.0]))
    assert metrics == {
        "mrr": pytest.approx((1 + 0.5 + 0.25 + 0.05) / 4, abs=1e-15),
        "mean_rank": pytest.approx(27 / 4, abs=1e-15),
        "hits_at_1": 0.25,
        "hits_at_3": 0.5,
        "hits_at_10": 0.75,
        "count": 4,
    }
    assert list(metrics) == ["mrr", "mean_rank", "hits_at_1", "hits_at_3", "hits_at_10", "count"]
    assert all(type(v) is float for k, v in metrics.items() if k != "count")
    assert type(metrics["count"]) is int


def test_metrics_half_ranks_and_custom_ks() -> None:
    metrics = metrics_from_ranks(torch.tensor([1.5, 3.0]), ks=(1, 2, 5))
    assert metrics["hits_at_1"] == 0.0
    assert metrics["hits_at_2"] == 0.5
    assert metrics["hits_at_5"] == 1.0
    assert metrics["mrr"] == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_metrics_reject_empty_and_invalid() -> None:
    with pytest.raises(ValueError):
        metrics_from_ranks(torch.tensor([]))
    with pytest.raises(ValueError):
        metrics_from_ranks(torch.tensor([0.5]))
    with pytest.raises(ValueError):
        metrics_from_ranks(torch.tensor([1.0]), ks=(0,))
    with pytest.raises(ValueError):
        metrics_from_ranks(torch.tensor([1.0]), ks=(1, 1))
