"""The vectorised evaluator against a plain-Python per-triple loop on random graphs and scores."""

from __future__ import annotations

import random

import pytest
import torch

from dhns.evaluation import TIE_POLICIES, build_filter_index, evaluate_link_prediction, rank_triples

NUM_ENTITIES = 13
NUM_RELATIONS = 3


def _brute_force_ranks(
    tail_table: list, head_table: list, test: list[tuple[int, int, int]], known: set[tuple[int, int, int]]
) -> dict[str, dict[str, list[float]]]:
    """Obviously correct reference: for every query, loop over every entity and count."""
    out = {side: {p: [] for p in TIE_POLICIES} | {"candidates": []} for side in ("head", "tail")}
    for h, r, t in test:
        for side in ("head", "tail"):
            if side == "tail":
                row, true_entity = tail_table[h][r], t
                is_known = lambda e: (h, r, e) in known  # noqa: E731
            else:
                row, true_entity = head_table[r][t], h
                is_known = lambda e: (e, r, t) in known  # noqa: E731
            s = row[true_entity]
            greater = 0
            greater_equal = 0
            candidates = 1  # the true entity
            for e in range(NUM_ENTITIES):
                if e == true_entity or is_known(e):
                    continue
                candidates += 1
                greater += row[e] > s
                greater_equal += row[e] >= s
            out[side]["candidates"].append(candidates)
            out[side]["optimistic"].append(1.0 + greater)
            out[side]["pessimistic"].append(1.0 + greater_equal)
            out[side]["realistic"].append(1.0 + (greater + greater_equal) / 2)
    return out


def _random_case(seed: int, integer_scores: bool):
    rng = random.Random(seed)
    known_list = [
        (rng.randrange(NUM_ENTITIES), rng.randrange(NUM_RELATIONS), rng.randrange(NUM_ENTITIES)) for _ in range(120)
    ]
    known_list += known_list[:10]  # duplicates must not matter
    test = rng.sample(known_list, 40) + [(4, 1, 4), (7, 2, 7)]  # plus self-loops
    known_list += test[-2:]
    if integer_scores:
        gen = lambda: float(rng.randrange(4))  # noqa: E731 - few values: many ties
    else:
        gen = lambda: rng.random()  # noqa: E731
    tail_table = [[[gen() for _ in range(NUM_ENTITIES)] for _ in range(NUM_RELATIONS)] for _ in range(NUM_ENTITIES)]
    head_table = [[[gen() for _ in range(NUM_ENTITIES)] for _ in range(NUM_ENTITIES)] for _ in range(NUM_RELATIONS)]
    return known_list, test, tail_table, head_table


@pytest.mark.parametrize("integer_scores", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_for_several_batch_sizes(make_table_scorer, seed: int, integer_scores: bool) -> None:
    known_list, test, tail_table, head_table = _random_case(seed, integer_scores)
    expected = _brute_force_ranks(tail_table, head_table, test, set(known_list))
    scorer = make_table_scorer(torch.tensor(tail_table), torch.tensor(head_table))
    index = build_filter_index(torch.tensor(known_list), NUM_ENTITIES)
    for batch_size in (1, 7, len(test)):
        ranks = rank_triples(scorer, torch.tensor(test), index, batch_size=batch_size)
        got = {
            side: {p: r.tolist() for p, r in by_policy.items()} | {"candidates": ranks.num_candidates[side].tolist()}
            for side, by_policy in ranks.ranks.items()
        }
        assert got == expected, f"batch_size={batch_size}"
    if integer_scores:  # the case must actually exercise ties
        assert expected["tail"]["optimistic"] != expected["tail"]["pessimistic"]


def test_metrics_invariant_to_batch_size(make_table_scorer) -> None:
    known_list, test, tail_table, head_table = _random_case(5, integer_scores=True)
    scorer = make_table_scorer(torch.tensor(tail_table), torch.tensor(head_table))
    index = build_filter_index(torch.tensor(known_list), NUM_ENTITIES)
    results = [
        evaluate_link_prediction(scorer, torch.tensor(test), index, batch_size=b) for b in (1, 3, 16, 1000)
    ]
    assert all(r == results[0] for r in results[1:])
    expected_self_loops = sum(h == t for h, _, t in test)
    assert expected_self_loops >= 2  # the two appended ones at least
    assert results[0]["num_self_loops"] == expected_self_loops
    assert results[0]["num_triples"] == len(test)
    assert results[0]["both"]["realistic"]["count"] == 2 * len(test)
