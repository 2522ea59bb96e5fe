"""A scorer that knows nothing must score the analytic expectation under the filter.

With n unfiltered candidates (target included) and continuous i.i.d. scores, the target's rank is
uniform on 1..n, so E[1/rank] = H_n / n, Var[1/rank] = H2_n / n - (H_n / n)^2 (H2_n = sum 1/i^2),
E[rank] = (n + 1) / 2 and Var[rank] = (n^2 - 1) / 12. Because the expectation depends on each
query's n, a wrong filter (too much, too little, or the target removed) shifts the mean.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from dhns.evaluation import evaluate_link_prediction, build_filter_index

NUM_ENTITIES = 50
NUM_RELATIONS = 2


def _uniform_rank_moments(n: int) -> tuple[float, float, float, float]:
    """Mean and variance of 1/rank and of rank, for rank uniform on 1..n."""
    harmonic = sum(1 / i for i in range(1, n + 1))
    harmonic2 = sum(1 / i**2 for i in range(1, n + 1))
    mean_reciprocal = harmonic / n
    return mean_reciprocal, harmonic2 / n - mean_reciprocal**2, (n + 1) / 2, (n * n - 1) / 12


def test_random_scorer_matches_analytic_expectation(make_random_scorer) -> None:
    rng = random.Random(0)
    known = {
        (rng.randrange(NUM_ENTITIES), rng.randrange(NUM_RELATIONS), rng.randrange(NUM_ENTITIES))
        for _ in range(4000)
    }
    known_list = sorted(known)
    test = [known_list[rng.randrange(len(known_list))] for _ in range(3000)]

    # Candidate counts per query, from the known set with plain Python.
    counts = []
    for h, r, t in test:
        counts.append(1 + sum(1 for e in range(NUM_ENTITIES) if e != t and (h, r, e) not in known))
        counts.append(1 + sum(1 for e in range(NUM_ENTITIES) if e != h and (e, r, t) not in known))
    assert min(counts) < 20 < max(counts)  # the filter matters a lot in this setup

    moments = [_uniform_rank_moments(n) for n in counts]
    num = len(counts)
    expected_mrr = sum(m[0] for m in moments) / num
    se_mrr = math.sqrt(sum(m[1] for m in moments)) / num
    expected_mean_rank = sum(m[2] for m in moments) / num
    se_mean_rank = math.sqrt(sum(m[3] for m in moments)) / num

    index = build_filter_index(torch.tensor(known_list), NUM_ENTITIES)
    result = evaluate_link_prediction(
        make_random_scorer(NUM_ENTITIES, seed=1), torch.tensor(test), index, batch_size=512
    )
    both = result["both"]
    assert both["optimistic"] == both["realistic"] == both["pessimistic"]  # no ties
    assert both["realistic"]["mrr"] == pytest.approx(expected_mrr, abs=3 * se_mrr)
    assert both["realistic"]["mean_rank"] == pytest.approx(expected_mean_rank, abs=3 * se_mean_rank)
    # Sanity of the test's power: unfiltered (n = 50 everywhere) would be far outside the band.
    unfiltered_mrr = _uniform_rank_moments(NUM_ENTITIES)[0]
    assert abs(unfiltered_mrr - expected_mrr) > 10 * se_mrr
