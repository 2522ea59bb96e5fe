"""Relation categories on a hand-made training graph whose tph and hpt are counted on paper.

relation 0  (0,0,1) (2,0,3) (4,0,5), plus (0,0,1) twice more   tph 3/3 = 1    hpt 3/3 = 1    -> 1-1
relation 1  (0,1,1) (0,1,2) (0,1,3) (4,1,5)                    tph 4/2 = 2    hpt 4/4 = 1    -> 1-N
relation 2  (1,2,0) (2,2,0) (3,2,5)                            tph 3/3 = 1    hpt 3/2 = 1.5  -> N-1 (1.5 is "N")
relation 3  (0,3,1) (0,3,2) (1,3,1) (1,3,2)                    tph 4/2 = 2    hpt 4/2 = 2    -> N-N
relation 4  no training triple                                                               -> unseen
relation 5  (0,5,1) (0,5,2) (1,5,3) (2,5,4)                    tph 4/3 < 1.5  hpt 4/4 = 1    -> 1-1
"""

from __future__ import annotations

import math

import pytest
import torch

from dhns.evaluation import RELATION_CATEGORIES, UNSEEN_CATEGORY, categorize_relations, partner_averages

TRAIN = [
    (0, 0, 1), (2, 0, 3), (4, 0, 5), (0, 0, 1), (0, 0, 1),
    (0, 1, 1), (0, 1, 2), (0, 1, 3), (4, 1, 5),
    (1, 2, 0), (2, 2, 0), (3, 2, 5),
    (0, 3, 1), (0, 3, 2), (1, 3, 1), (1, 3, 2),
    (0, 5, 1), (0, 5, 2), (1, 5, 3), (2, 5, 4),
]


def test_category_names() -> None:
    assert RELATION_CATEGORIES == ("1-1", "1-N", "N-1", "N-N")
    assert UNSEEN_CATEGORY == "unseen"


def test_categories_by_hand() -> None:
    categories = categorize_relations(torch.tensor(TRAIN), num_relations=6)
    assert categories == ("1-1", "1-N", "N-1", "N-N", "unseen", "1-1")


def test_tails_per_head_and_heads_per_tail_by_hand() -> None:
    tph, hpt = partner_averages(torch.tensor(TRAIN), num_relations=6)
    expected_tph = [1.0, 2.0, 1.0, 2.0, math.nan, 4 / 3]
    expected_hpt = [1.0, 1.0, 1.5, 2.0, math.nan, 1.0]
    assert tph.tolist() == pytest.approx(expected_tph, nan_ok=True)
    assert hpt.tolist() == pytest.approx(expected_hpt, nan_ok=True)


def test_duplicates_and_row_order_do_not_change_the_categories() -> None:
    shuffled = torch.tensor(TRAIN)[torch.randperm(len(TRAIN), generator=torch.Generator().manual_seed(0))]
    assert categorize_relations(shuffled, 6) == categorize_relations(torch.tensor(TRAIN), 6)
    # Counting the two repeated (0,0,1) rows would give relation 0 tph 5/3 >= 1.5, i.e. "1-N".
    assert categorize_relations(torch.tensor([(0, 0, 1)] * 3 + [(2, 0, 3), (4, 0, 5)]), 1) == ("1-1",)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="relation ids"):
        categorize_relations(torch.tensor(TRAIN), num_relations=5)
    with pytest.raises(ValueError):
        categorize_relations(torch.tensor(TRAIN), num_relations=0)
    with pytest.raises(ValueError):
        categorize_relations(torch.tensor([[0, 0]]), num_relations=1)
    with pytest.raises(ValueError):
        categorize_relations(torch.tensor([[0.0, 0.0, 1.0]]), num_relations=1)


def test_empty_train_makes_every_relation_unseen() -> None:
    assert categorize_relations(torch.empty(0, 3, dtype=torch.long), 2) == ("unseen", "unseen")
