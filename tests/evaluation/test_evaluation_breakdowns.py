"""Breakdowns (relation categories, without self-loops, without triples unseen in training) equal evaluating
their triples alone, from one pass."""

from __future__ import annotations

import random

import pytest
import torch

from dhns.evaluation import (
    TIE_POLICIES,
    build_filter_index,
    categorize_relations,
    evaluate_link_prediction,
    rank_triples,
    summarize_subset,
)

NUM_ENTITIES = 15
NUM_RELATIONS = 5
SECTIONS = ("head", "tail", "both")


def _case(seed: int, make_table_scorer, *, with_self_loops: bool):
    """A random graph whose relations fall into different categories, and a scorer with ties."""
    rng = random.Random(seed)
    train = {(i, 0, i + 1) for i in range(6)}  # 1-1
    train |= {(0, 1, t) for t in range(2, 6)} | {(1, 1, t) for t in range(6, 10)}  # 1-N: 4 tails per head
    train |= {(h, 2, 0) for h in range(2, 6)} | {(h, 2, 1) for h in range(6, 10)}  # N-1: 4 heads per tail
    train |= {(h, 3, t) for h in (10, 11, 12) for t in (12, 13, 14) if h != t}  # N-N; relation 4 unseen
    test = rng.sample(sorted(train), 25) + [(rng.randrange(NUM_ENTITIES), 4, rng.randrange(NUM_ENTITIES))]  # unseen
    if with_self_loops:
        test += [(3, 0, 3), (7, 3, 7), (9, 1, 9)]
    known = sorted(train) + test
    gen = torch.Generator().manual_seed(seed)
    tail_table = torch.randint(0, 4, (NUM_ENTITIES, NUM_RELATIONS, NUM_ENTITIES), generator=gen).float()
    head_table = torch.randint(0, 4, (NUM_RELATIONS, NUM_ENTITIES, NUM_ENTITIES), generator=gen).float()
    scorer = make_table_scorer(tail_table, head_table)
    return torch.tensor(sorted(train)), torch.tensor(test), build_filter_index(torch.tensor(known), NUM_ENTITIES), scorer


def _metrics_only(section: dict) -> dict:
    return {side: section[side] for side in SECTIONS}


@pytest.mark.parametrize("seed", [0, 1])
def test_each_category_equals_evaluating_its_triples_alone(make_table_scorer, seed: int) -> None:
    train, test, index, scorer = _case(seed, make_table_scorer, with_self_loops=True)
    categories = categorize_relations(train, NUM_RELATIONS)
    assert set(categories) == {"1-1", "1-N", "N-1", "N-N", "unseen"}  # the case covers every category
    result = evaluate_link_prediction(scorer, test, index, batch_size=4, relation_categories=categories)
    by_category = result["by_category"]
    assert list(by_category) == ["1-1", "1-N", "N-1", "N-N", "unseen"]
    for name, section in by_category.items():
        relations_in = [r for r in range(NUM_RELATIONS) if categories[r] == name]
        rows = [i for i, (_, r, _) in enumerate(test.tolist()) if r in relations_in]
        alone = evaluate_link_prediction(scorer, test[rows], index, batch_size=7)
        assert _metrics_only(section) == _metrics_only(alone), name
        assert section["num_triples"] == len(rows)
        assert section["num_relations"] == len(relations_in)
        assert set(section["both"]) == set(TIE_POLICIES)  # optimistic included
    assert sum(s["num_triples"] for s in by_category.values()) == len(test)
    assert sum(s["num_relations"] for s in by_category.values()) == NUM_RELATIONS


def test_without_self_loops_equals_evaluating_the_filtered_list_alone(make_table_scorer) -> None:
    _, test, index, scorer = _case(2, make_table_scorer, with_self_loops=True)
    result = evaluate_link_prediction(scorer, test, index)
    kept = [triple for triple in test.tolist() if triple[0] != triple[2]]
    alone = evaluate_link_prediction(scorer, torch.tensor(kept), index)
    section = result["without_self_loops"]
    assert _metrics_only(section) == _metrics_only(alone)
    assert section["num_triples"] == len(kept)
    assert section["num_excluded"] == result["num_self_loops"] == len(test) - len(kept) >= 3
    assert set(section["both"]) == set(TIE_POLICIES)
    assert "adjusted_arithmetic_mean_rank_index" in section["both"]["optimistic"]


def test_sections_absent_when_not_applicable(make_table_scorer) -> None:
    _, test, index, scorer = _case(3, make_table_scorer, with_self_loops=False)
    test = test[test[:, 0] != test[:, 2]]
    result = evaluate_link_prediction(scorer, test, index)
    assert "without_self_loops" not in result and "by_category" not in result
    assert result["num_self_loops"] == 0


def test_every_breakdown_comes_from_one_ranking_pass(make_table_scorer) -> None:
    train, test, index, scorer = _case(4, make_table_scorer, with_self_loops=True)
    calls = {"tails": 0, "heads": 0}
    score_tails, score_heads = scorer.score_tails, scorer.score_heads

    def count_tails(heads, relations):
        calls["tails"] += 1
        return score_tails(heads, relations)

    def count_heads(relations, tails):
        calls["heads"] += 1
        return score_heads(relations, tails)

    scorer.score_tails, scorer.score_heads = count_tails, count_heads
    evaluate_link_prediction(scorer, test, index, batch_size=10, relation_categories=categorize_relations(train, 5))
    chunks = -(-len(test) // 10)
    assert calls == {"tails": chunks, "heads": chunks}


def test_a_category_without_triples_in_the_split_keeps_its_counts(make_table_scorer) -> None:
    train, test, index, scorer = _case(5, make_table_scorer, with_self_loops=False)
    categories = categorize_relations(train, NUM_RELATIONS)
    only_relation_0 = test[test[:, 1] == 0]
    result = evaluate_link_prediction(scorer, only_relation_0, index, relation_categories=categories)
    assert result["by_category"]["N-N"] == {"num_triples": 0, "num_relations": 1}
    assert result["by_category"]["unseen"] == {"num_triples": 0, "num_relations": 1}
    assert result["by_category"]["1-1"]["num_triples"] == len(only_relation_0)


def test_summarize_subset_of_nothing_is_a_count() -> None:
    index = build_filter_index(torch.tensor([[0, 0, 1]]), 3)

    class Flat:
        num_entities = 3

        def score_tails(self, heads, relations):
            return torch.zeros(heads.shape[0], 3)

        def score_heads(self, relations, tails):
            return torch.zeros(tails.shape[0], 3)

    ranks = rank_triples(Flat(), torch.tensor([[0, 0, 1]]), index)
    assert summarize_subset(ranks, torch.empty(0, dtype=torch.long)) == {"num_triples": 0}
    assert summarize_subset(ranks, torch.tensor([0]))["num_triples"] == 1


def test_categories_must_cover_the_relations(make_table_scorer) -> None:
    _, test, index, scorer = _case(6, make_table_scorer, with_self_loops=False)
    with pytest.raises(ValueError, match="category"):
        evaluate_link_prediction(scorer, test, index, relation_categories=("1-1", "1-N"))


def test_without_unseen_leaves_out_triples_with_an_entity_or_relation_training_never_holds(make_table_scorer) -> None:
    train = torch.tensor([(0, 0, 1), (1, 0, 2), (2, 1, 3)])  # entities 0-3 and relations 0-1 occur in training
    test = torch.tensor([(0, 0, 2), (4, 0, 1),  # head 4 unseen
                         (3, 1, 0), (1, 2, 3),  # relation 2 unseen
                         (2, 1, 5), (5, 2, 4),  # tail 5; and a triple of unseen ids only
                         (1, 1, 3)])
    index = build_filter_index(torch.cat([train, test]), 6)
    gen = torch.Generator().manual_seed(3)
    scorer = make_table_scorer(torch.randint(0, 4, (6, 3, 6), generator=gen).float(),
                               torch.randint(0, 4, (3, 6, 6), generator=gen).float())
    result = evaluate_link_prediction(scorer, test, index, train_triples=train)
    section = result["without_unseen"]
    alone = evaluate_link_prediction(scorer, test[[0, 2, 6]], index)
    assert _metrics_only(section) == _metrics_only(alone)
    assert (section["num_triples"], section["num_excluded"]) == (3, 4)
    assert (section["unseen_entities"], section["unseen_relations"]) == (2, 1)  # entities 4 and 5, relation 2
    seen_only = evaluate_link_prediction(scorer, test[[0, 2, 6]], index, train_triples=train)
    assert "without_unseen" not in seen_only  # nothing to leave out: no section
