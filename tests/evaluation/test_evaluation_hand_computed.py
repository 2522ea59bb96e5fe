"""The evaluator end to end on a 5-entity graph whose ranks were worked out on paper.

Graph (one relation, r = 0). Known triples:
    train (0,0,1) (0,0,3)   valid (2,0,4)   test (0,0,2) (1,0,4)

Test triple (0,0,2)
  tail query (0,0,?), true 2, scores [0.5, 0.9, 0.5, 0.5, 0.7]
    known tails of (0,0): {1, 2, 3} -> 1 (0.9, would outrank) and 3 (0.5, a tie) are filtered.
    remaining others: 0 (0.5 tie), 4 (0.7 better)  -> optimistic 2, pessimistic 3, realistic 2.5
    (unfiltered it would be optimistic 3, pessimistic 5)
  head query (?,0,2), true 0, scores all 0.3
    known heads of (0,2): {0} -> nothing else filtered; tied with 4 others -> 1 / 5 / 3
Test triple (1,0,4)
  tail query (1,0,?), true 4, scores [0, 0, 0, 0, 1] -> 1 / 1 / 1
  head query (?,0,4), true 1, scores [0.2, 0.4, 0.8, 0.4, -inf]
    known heads of (0,4): {1 (test), 2 (valid only)} -> 2 (0.8, would outrank) is filtered.
    remaining others: 0 (0.2), 3 (0.4 tie), 4 (-inf) -> 1 / 2 / 1.5

both (pooled 4 ranks)
  optimistic [1, 1, 2, 1]     mrr 3.5/4 = 0.875   mean 1.25  h@1 0.75  h@3 1  h@10 1
  realistic  [3, 1.5, 2.5, 1] mrr 2.4/4 = 0.6     mean 2     h@1 0.25  h@3 1  h@10 1
  pessimistic[5, 2, 3, 1]     mrr (61/30)/4       mean 2.75  h@1 0.25  h@3 0.75 h@10 1
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from dhns.evaluation import build_filter_index, evaluate_link_prediction, rank_triples

NUM_ENTITIES = 5
TRAIN = [(0, 0, 1), (0, 0, 3)]
VALID = [(2, 0, 4)]
TEST = [(0, 0, 2), (1, 0, 4)]


@pytest.fixture
def scorer(make_table_scorer):
    tail_table = torch.zeros(NUM_ENTITIES, 1, NUM_ENTITIES)  # (E, R, E)
    head_table = torch.zeros(1, NUM_ENTITIES, NUM_ENTITIES)  # (R, E, E)
    tail_table[0, 0] = torch.tensor([0.5, 0.9, 0.5, 0.5, 0.7])
    tail_table[1, 0] = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])
    head_table[0, 2] = torch.tensor([0.3, 0.3, 0.3, 0.3, 0.3])
    head_table[0, 4] = torch.tensor([0.2, 0.4, 0.8, 0.4, -math.inf])
    return make_table_scorer(tail_table, head_table)


@pytest.fixture
def filter_index():
    return build_filter_index(torch.tensor(TRAIN + VALID + TEST), NUM_ENTITIES)


def test_exact_per_query_ranks(scorer, filter_index) -> None:
    ranks = rank_triples(scorer, torch.tensor(TEST), filter_index, batch_size=2)
    as_lists = {side: {p: r.tolist() for p, r in by_policy.items()} for side, by_policy in ranks.ranks.items()}
    assert as_lists == {
        "tail": {"optimistic": [2.0, 1.0], "realistic": [2.5, 1.0], "pessimistic": [3.0, 1.0]},
        "head": {"optimistic": [1.0, 1.0], "realistic": [3.0, 1.5], "pessimistic": [5.0, 2.0]},
    }
    # Candidates (the answer included): (0,0,?) 5 - {1, 3} = 3; (1,0,?) 5; (?,0,2) 5; (?,0,4) 5 - {2} = 4.
    assert ranks.num_candidates["tail"].tolist() == [3, 5]
    assert ranks.num_candidates["head"].tolist() == [5, 4]
    assert ranks.num_triples == 2


def test_exact_metrics(scorer, filter_index) -> None:
    result = evaluate_link_prediction(scorer, torch.tensor(TEST), filter_index, batch_size=1)
    assert set(result) == {"head", "tail", "both", "num_triples", "num_self_loops"}  # no self-loop, no categories
    assert result["num_triples"] == 2
    assert result["num_self_loops"] == 0

    # Expected random ranks (c + 1) / 2 of the four queries: 3, 3, 2, 2.5 -> E[MR] = 10.5 / 4 = 2.625.
    both = result["both"]
    assert both["optimistic"] == {
        "mrr": pytest.approx(0.875), "mean_rank": pytest.approx(1.25),
        "adjusted_arithmetic_mean_rank": pytest.approx(1.25 / 2.625),
        "adjusted_arithmetic_mean_rank_index": pytest.approx(11 / 13),  # 1 - 0.25 / 1.625
        "hits_at_1": 0.75, "hits_at_3": 1.0, "hits_at_10": 1.0, "count": 4,
    }
    assert both["realistic"] == {
        "mrr": pytest.approx(0.6), "mean_rank": pytest.approx(2.0),
        "adjusted_arithmetic_mean_rank": pytest.approx(2.0 / 2.625),
        "adjusted_arithmetic_mean_rank_index": pytest.approx(5 / 13),  # 1 - 1 / 1.625
        "hits_at_1": 0.25, "hits_at_3": 1.0, "hits_at_10": 1.0, "count": 4,
    }
    assert both["pessimistic"] == {
        "mrr": pytest.approx(61 / 120), "mean_rank": pytest.approx(2.75),
        "adjusted_arithmetic_mean_rank": pytest.approx(2.75 / 2.625),
        "adjusted_arithmetic_mean_rank_index": pytest.approx(-1 / 13),  # worse than chance: 1 - 1.75 / 1.625
        "hits_at_1": 0.25, "hits_at_3": 0.75, "hits_at_10": 1.0, "count": 4,
    }
    assert list(both["realistic"])[:4] == [
        "mrr", "mean_rank", "adjusted_arithmetic_mean_rank", "adjusted_arithmetic_mean_rank_index"
    ]
    # Head side alone: candidates 5, 4 -> E[MR] = (3 + 2.5) / 2 = 2.75; realistic MR 2.25.
    assert result["head"]["realistic"]["adjusted_arithmetic_mean_rank_index"] == pytest.approx(1 - 1.25 / 1.75)
    assert result["head"]["realistic"]["mrr"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert result["head"]["realistic"]["mean_rank"] == pytest.approx(2.25)
    assert result["tail"]["realistic"]["mrr"] == pytest.approx((0.4 + 1.0) / 2)
    assert result["tail"]["pessimistic"]["count"] == 2


def test_result_is_json_with_dvc_style_paths(scorer, filter_index) -> None:
    result = json.loads(json.dumps(evaluate_link_prediction(scorer, torch.tensor(TEST), filter_index)))
    assert result["both"]["realistic"]["mrr"] == pytest.approx(0.6)


def test_without_filter_the_known_answers_count(scorer) -> None:
    raw_index = build_filter_index(torch.empty(0, 3, dtype=torch.long), NUM_ENTITIES)
    ranks = rank_triples(scorer, torch.tensor(TEST), raw_index)
    assert ranks.num_candidates["tail"].tolist() == ranks.num_candidates["head"].tolist() == [5, 5]
    assert ranks.ranks["tail"]["optimistic"].tolist() == [3.0, 1.0]
    assert ranks.ranks["tail"]["pessimistic"].tolist() == [5.0, 1.0]
    assert ranks.ranks["head"]["optimistic"].tolist() == [1.0, 2.0]


def test_triple_known_only_in_another_split_is_filtered(scorer) -> None:
    # Without the valid split, (2,0,4) is unknown and entity 2 outranks the true head 1.
    without_valid = build_filter_index(torch.tensor(TRAIN + TEST), NUM_ENTITIES)
    ranks = rank_triples(scorer, torch.tensor(TEST), without_valid)
    assert ranks.ranks["head"]["optimistic"].tolist() == [1.0, 2.0]
    with_valid = build_filter_index(torch.tensor(TRAIN + VALID + TEST), NUM_ENTITIES)
    ranks = rank_triples(scorer, torch.tensor(TEST), with_valid)
    assert ranks.ranks["head"]["optimistic"].tolist() == [1.0, 1.0]
