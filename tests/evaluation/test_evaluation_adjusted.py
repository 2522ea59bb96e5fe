"""Chance-adjusted mean ranks (Berrendorf et al., 2020): candidate counts, hand values, random and perfect scorers.

AMR = MR / E[MR] and AMRI = 1 - (MR - 1) / (E[MR] - 1), with E[MR] the mean of (c_i + 1) / 2 over the
queries and c_i the number of entities query i's answer was ranked among after filtering.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from dhns.evaluation import (
    TIE_POLICIES,
    build_filter_index,
    count_candidates,
    evaluate_link_prediction,
    metrics_from_ranks,
)

AMR = "adjusted_arithmetic_mean_rank"
AMRI = "adjusted_arithmetic_mean_rank_index"


def test_candidate_counts_include_the_answer_whether_or_not_the_filter_marks_it() -> None:
    mask = torch.tensor(
        [
            [False, True, True, False, False],  # answer 0 unmarked, 2 others filtered -> 3
            [False, True, True, False, False],  # answer 1 marked (the usual case), 1 other filtered -> 4
            [False, False, False, False, False],  # nothing filtered -> 5
            [True, True, True, True, True],  # everything known: the answer alone -> 1
        ]
    )
    counts = count_candidates(torch.tensor([0, 1, 4, 3]), mask, num_marked=torch.tensor([2, 2, 0, 5]))
    assert counts.tolist() == [3, 4, 5, 1]
    assert counts.dtype == torch.int64


def test_adjusted_mean_ranks_by_hand() -> None:
    # Three queries: rank 1 of 4 candidates, rank 3 of 10, rank 2 of 2.
    # Expected random ranks 2.5, 5.5, 1.5 -> E[MR] = 9.5 / 3; MR = 6 / 3 = 2.
    metrics = metrics_from_ranks(torch.tensor([1.0, 3.0, 2.0]), num_candidates=torch.tensor([4, 10, 2]))
    expected_mean_rank = 9.5 / 3
    assert metrics["mean_rank"] == pytest.approx(2.0)
    assert metrics[AMR] == pytest.approx(2.0 / expected_mean_rank)  # 0.6316
    assert metrics[AMRI] == pytest.approx(1 - 1.0 / (expected_mean_rank - 1))  # 1 - 3 / 6.5 = 0.5385
    assert metrics[AMRI] == pytest.approx(7 / 13)
    assert list(metrics) == ["mrr", "mean_rank", AMR, AMRI, "hits_at_1", "hits_at_3", "hits_at_10", "count"]


def test_worst_possible_ranks_give_minus_one_and_single_candidates_give_none() -> None:
    worst = metrics_from_ranks(torch.tensor([4.0, 10.0]), num_candidates=torch.tensor([4, 10]))
    assert worst[AMRI] == pytest.approx(-1.0)
    alone = metrics_from_ranks(torch.tensor([1.0, 1.0]), num_candidates=torch.tensor([1, 1]))
    assert alone[AMRI] is None  # 0 / 0: a random scorer is perfect too
    assert alone[AMR] == 1.0


def test_candidate_counts_must_fit_the_ranks() -> None:
    with pytest.raises(ValueError, match="shape"):
        metrics_from_ranks(torch.tensor([1.0, 2.0]), num_candidates=torch.tensor([3]))
    with pytest.raises(ValueError, match=">="):
        metrics_from_ranks(torch.tensor([3.0]), num_candidates=torch.tensor([2]))  # rank beyond the candidates
    with pytest.raises(ValueError, match=">="):
        metrics_from_ranks(torch.tensor([1.0]), num_candidates=torch.tensor([0]))


def _random_graph(seed: int, num_entities: int, num_relations: int, num_known: int):
    rng = random.Random(seed)
    known = sorted(
        {(rng.randrange(num_entities), rng.randrange(num_relations), rng.randrange(num_entities)) for _ in range(num_known)}
    )
    return rng, known


def test_random_scorer_scores_zero_on_average(make_random_scorer) -> None:
    num_entities = 40
    rng, known = _random_graph(0, num_entities, 2, 2500)
    test = [known[rng.randrange(len(known))] for _ in range(3000)]
    known_set = set(known)
    counts = []  # per query, with plain Python, in the evaluator's pooling order (heads, then tails)
    for h, r, t in test:
        counts.append(1 + sum(1 for e in range(num_entities) if e != h and (e, r, t) not in known_set))
    for h, r, t in test:
        counts.append(1 + sum(1 for e in range(num_entities) if e != t and (h, r, e) not in known_set))
    assert min(counts) < 15 < max(counts)  # the filter changes the expectation a lot
    expected_mean_rank = sum((c + 1) / 2 for c in counts) / len(counts)
    se_mean_rank = math.sqrt(sum((c * c - 1) / 12 for c in counts)) / len(counts)
    se_index = se_mean_rank / (expected_mean_rank - 1)

    index = build_filter_index(torch.tensor(known), num_entities)
    result = evaluate_link_prediction(make_random_scorer(num_entities, seed=3), torch.tensor(test), index)
    for policy in TIE_POLICIES:  # no ties: all three coincide
        assert result["both"][policy][AMRI] == pytest.approx(0.0, abs=4 * se_index)
        assert result["both"][policy][AMR] == pytest.approx(1.0, abs=4 * se_mean_rank / expected_mean_rank)
    # Power: against the unfiltered expectation (all 40 entities) a random scorer would look good.
    unfiltered_index = 1 - (result["both"]["realistic"]["mean_rank"] - 1) / ((num_entities + 1) / 2 - 1)
    assert unfiltered_index > 10 * se_index


def test_perfect_scorer_scores_one_under_every_tie_policy(make_table_scorer) -> None:
    num_entities, num_relations = 12, 3
    rng, known = _random_graph(1, num_entities, num_relations, 60)
    tail_table = torch.zeros(num_entities, num_relations, num_entities)  # (E, R, E)
    head_table = torch.zeros(num_relations, num_entities, num_entities)  # (R, E, E)
    for h, r, t in known:  # every true answer scores 1, everything else 0: other true ones are filtered
        tail_table[h, r, t] = 1.0
        head_table[r, t, h] = 1.0
    test = torch.tensor(rng.sample(known, 20))
    result = evaluate_link_prediction(
        make_table_scorer(tail_table, head_table), test, build_filter_index(torch.tensor(known), num_entities)
    )
    for side in ("head", "tail", "both"):
        for policy in TIE_POLICIES:
            assert result[side][policy][AMRI] == 1.0
            assert result[side][policy]["mean_rank"] == 1.0


def test_a_scorer_that_ties_everything_is_chance_only_when_realistic(make_table_scorer) -> None:
    # All scores equal: optimistic rank 1 (looks perfect), pessimistic c (the worst), realistic (c + 1) / 2.
    num_entities = 9
    rng, known = _random_graph(2, num_entities, 1, 30)
    scorer = make_table_scorer(torch.zeros(num_entities, 1, num_entities), torch.zeros(1, num_entities, num_entities))
    result = evaluate_link_prediction(scorer, torch.tensor(known[:15]), build_filter_index(torch.tensor(known), 9))
    assert result["both"]["optimistic"][AMRI] == 1.0
    assert result["both"]["realistic"][AMRI] == pytest.approx(0.0, abs=1e-12)
    assert result["both"]["pessimistic"][AMRI] == pytest.approx(-1.0)
