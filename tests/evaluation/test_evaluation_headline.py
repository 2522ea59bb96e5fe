"""The evaluate stage's report in two files: a headline a terminal can show, and every breakdown, each value once."""

from __future__ import annotations

from typing import Any

import torch

from dhns.evaluation import (
    HEADLINE_SECTIONS,
    TIE_POLICIES,
    build_filter_index,
    categorize_relations,
    evaluate_link_prediction,
    split_headline,
)

NUM_ENTITIES = 8
BREAKDOWN_NAMES = {"head", "tail", "by_category", "without_self_loops", "num_self_loops", "without_unseen", "1-1", "1-N",
                   "N-1", "N-N"}


def _leaves(tree: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every leaf value by its key path, as DVC lists metrics (``test.both.realistic.mrr``)."""
    if not isinstance(tree, dict):
        return {path: tree}
    return {leaf: value for key, child in tree.items() for leaf, value in _leaves(child, (*path, key)).items()}


def _stage_results(make_table_scorer) -> dict[str, dict]:
    """What stages/evaluate.py reports before splitting: every section present (categories, self-loops, and on
    test the triples unseen in training: relation 4 has no training triple)."""
    train = torch.tensor([(0, 0, 1), (1, 0, 2), (0, 1, 3), (0, 1, 4), (5, 2, 6), (7, 2, 6), (2, 3, 5)])
    splits = {"valid": torch.tensor([(2, 0, 3), (3, 3, 3)]), "test": torch.tensor([(1, 1, 5), (4, 4, 4), (6, 2, 6)])}
    index = build_filter_index(torch.cat([train, *splits.values()]), NUM_ENTITIES)
    gen = torch.Generator().manual_seed(0)
    scorer = make_table_scorer(torch.randint(0, 3, (NUM_ENTITIES, 5, NUM_ENTITIES), generator=gen).float(),
                               torch.randint(0, 3, (5, NUM_ENTITIES, NUM_ENTITIES), generator=gen).float())
    categories = categorize_relations(train, 5)
    results = {}
    for split, triples in splits.items():
        results[split] = evaluate_link_prediction(scorer, triples, index, relation_categories=categories,
                                                  train_triples=train)
        results[split]["seconds"] = 0.5
    return results


def test_every_value_lands_in_exactly_one_file_under_its_old_path(make_table_scorer) -> None:
    results = _stage_results(make_table_scorer)
    assert all("without_self_loops" in r and "by_category" in r for r in results.values())  # nothing left untested
    assert "without_unseen" in results["test"]
    headline, breakdowns = split_headline(results)
    everything, top, rest = _leaves(results), _leaves(headline), _leaves(breakdowns)
    assert not set(top) & set(rest)
    assert {**top, **rest} == everything and len(top) + len(rest) == len(everything)
    assert {split: {**headline[split], **breakdowns[split]} for split in results} == results  # compare's merge


def test_the_headline_is_both_directions_under_every_tie_policy_and_the_time(make_table_scorer) -> None:
    headline, breakdowns = split_headline(_stage_results(make_table_scorer))
    leaves = _leaves(headline)
    assert len(leaves) < 100
    assert not {name for path in leaves for name in path} & BREAKDOWN_NAMES
    for split in ("valid", "test"):
        assert tuple(headline[split]) == HEADLINE_SECTIONS == ("both", "seconds")
        assert tuple(headline[split]["both"]) == TIE_POLICIES
        assert {"mrr", "hits_at_1", "hits_at_3", "hits_at_10", "mean_rank", "adjusted_arithmetic_mean_rank_index",
                "count"} <= set(headline[split]["both"]["realistic"])
        unseen = ["without_unseen"] if split == "test" else []  # valid's triples all occur in training
        assert list(breakdowns[split]) == ["head", "tail", "num_triples", "num_self_loops", "without_self_loops",
                                           "by_category", *unseen]


def test_a_section_added_to_the_report_later_goes_to_the_breakdowns() -> None:
    headline, breakdowns = split_headline({"test": {"both": {"realistic": {"mrr": 0.5}}, "by_hardness": {"x": 1}}})
    assert headline == {"test": {"both": {"realistic": {"mrr": 0.5}}}}
    assert breakdowns == {"test": {"by_hardness": {"x": 1}}}
