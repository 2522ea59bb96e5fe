"""The filter index: exact masks, edge cases, and build speed at DB15K-like scale."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from dhns.evaluation import FilterIndex, build_filter_index


def test_masks_mark_exactly_the_known_partners() -> None:
    known = torch.tensor([[0, 0, 1], [0, 0, 3], [0, 1, 2], [2, 0, 3], [0, 0, 1], [4, 5, 4]])
    index = build_filter_index(known, num_entities=5)
    assert isinstance(index, FilterIndex)
    assert index.num_known == 5  # the duplicate (0, 0, 1) counted once

    tails = index.tail_mask(torch.tensor([0, 0, 2, 3, 4, 0]), torch.tensor([0, 1, 0, 0, 5, 9]))
    assert tails.dtype == torch.bool and tails.shape == (6, 5)
    assert tails.nonzero().tolist() == [[0, 1], [0, 3], [1, 2], [2, 3], [4, 4]]  # rows 3 and 5: unknown pairs

    heads = index.head_mask(torch.tensor([0, 0, 1, 5, 2]), torch.tensor([3, 1, 2, 4, 3]))
    assert heads.nonzero().tolist() == [[0, 0], [0, 2], [1, 0], [2, 0], [3, 4]]

    # The counts come from the postings, not the masks: they must agree row by row.
    assert index.num_known_tails(torch.tensor([0, 0, 2, 3, 4, 0]), torch.tensor([0, 1, 0, 0, 5, 9])).tolist() == \
        tails.sum(dim=1).tolist() == [2, 1, 1, 0, 1, 0]
    assert index.num_known_heads(torch.tensor([0, 0, 1, 5, 2]), torch.tensor([3, 1, 2, 4, 3])).tolist() == \
        heads.sum(dim=1).tolist() == [2, 1, 1, 1, 0]


def test_relation_ids_beyond_the_known_ones_do_not_alias() -> None:
    # Key r * E + e: relation 1 with head 0 must not collide with relation 0 and some other head.
    known = torch.tensor([[0, 1, 2]])
    index = build_filter_index(known, num_entities=3)
    assert not index.tail_mask(torch.tensor([1, 2]), torch.tensor([0, 0])).any()
    assert index.tail_mask(torch.tensor([0]), torch.tensor([1])).nonzero().tolist() == [[0, 2]]


def test_empty_known_set_and_empty_query_batch() -> None:
    index = build_filter_index(torch.empty(0, 3, dtype=torch.long), num_entities=4)
    assert index.num_known == 0
    assert not index.tail_mask(torch.tensor([0, 1]), torch.tensor([0, 0])).any()
    assert index.num_known_tails(torch.tensor([0, 1]), torch.tensor([0, 0])).tolist() == [0, 0]
    index = build_filter_index(torch.tensor([[0, 0, 1]]), num_entities=4)
    empty = torch.empty(0, dtype=torch.long)
    assert index.head_mask(empty, empty).shape == (0, 4)


def test_invalid_known_triples_raise() -> None:
    with pytest.raises(ValueError):
        build_filter_index(torch.tensor([[0, 0, 5]]), num_entities=5)
    with pytest.raises(ValueError):
        build_filter_index(torch.tensor([[-1, 0, 1]]), num_entities=5)
    with pytest.raises(ValueError):
        build_filter_index(torch.tensor([[0, -1, 1]]), num_entities=5)
    with pytest.raises(ValueError):
        build_filter_index(torch.tensor([[0, 0]]), num_entities=5)
    with pytest.raises(ValueError):
        build_filter_index(torch.tensor([[0.0, 0.0, 1.0]]), num_entities=5)


def test_builds_fast_and_correct_at_scale() -> None:
    num_entities, num_relations, num_known = 20_000, 300, 200_000
    gen = torch.Generator().manual_seed(0)
    known = torch.stack(
        [
            torch.randint(num_entities, (num_known,), generator=gen),
            torch.randint(num_relations, (num_known,), generator=gen),
            torch.randint(num_entities, (num_known,), generator=gen),
        ],
        dim=1,
    )  # (K, 3)
    start = time.perf_counter()
    index = build_filter_index(known, num_entities)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"building took {elapsed:.2f} s; a per-triple Python loop?"

    # Spot-check masks of some real and some random queries against numpy.
    queries = torch.cat([known[:50], torch.randint(num_relations, (50, 3), generator=gen)])  # (100, 3)
    tails = index.tail_mask(queries[:, 0], queries[:, 1]).numpy()
    heads = index.head_mask(queries[:, 1], queries[:, 2]).numpy()
    k = known.numpy()
    for row, (h, r, t) in enumerate(queries.tolist()):
        expected_tails = np.zeros(num_entities, dtype=bool)
        expected_tails[k[(k[:, 0] == h) & (k[:, 1] == r), 2]] = True
        expected_heads = np.zeros(num_entities, dtype=bool)
        expected_heads[k[(k[:, 1] == r) & (k[:, 2] == t), 0]] = True
        assert np.array_equal(tails[row], expected_tails)
        assert np.array_equal(heads[row], expected_heads)
    assert tails[:50].any(axis=1).all()  # the real queries do find something
    assert index.num_known_tails(queries[:, 0], queries[:, 1]).tolist() == tails.sum(axis=1).tolist()
    assert index.num_known_heads(queries[:, 1], queries[:, 2]).tolist() == heads.sum(axis=1).tolist()
