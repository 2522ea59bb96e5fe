"""Fake scorers for the evaluation tests: score tables the tests control entry by entry."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor


class TableScorer:
    """A `LinkScorer` that looks scores up in fixed tables, so expected ranks can be worked out by hand.

    ``tail_table[h, r]`` are the scores of all tails for (h, r, ?); ``head_table[r, t]`` those of all
    heads for (?, r, t).
    """

    def __init__(self, tail_table: Tensor, head_table: Tensor) -> None:
        self.tail_table = tail_table  # (E, R, E)
        self.head_table = head_table  # (R, E, E)
        self.num_entities = int(tail_table.shape[-1])

    def score_tails(self, heads: Tensor, relations: Tensor) -> Tensor:
        return self.tail_table[heads, relations]  # (B, E)

    def score_heads(self, relations: Tensor, tails: Tensor) -> Tensor:
        return self.head_table[relations, tails]  # (B, E)


class RandomScorer:
    """Fresh i.i.d. uniform scores on every call: a model that knows nothing, with no ties."""

    def __init__(self, num_entities: int, seed: int) -> None:
        self.num_entities = num_entities
        self.generator = torch.Generator().manual_seed(seed)

    def _draw(self, batch: int) -> Tensor:
        return torch.rand(batch, self.num_entities, generator=self.generator, dtype=torch.float64)

    def score_tails(self, heads: Tensor, relations: Tensor) -> Tensor:
        return self._draw(heads.shape[0])

    def score_heads(self, relations: Tensor, tails: Tensor) -> Tensor:
        return self._draw(tails.shape[0])


@pytest.fixture
def make_table_scorer() -> Callable[[Tensor, Tensor], TableScorer]:
    return TableScorer


@pytest.fixture
def make_random_scorer() -> Callable[[int, int], RandomScorer]:
    return RandomScorer
