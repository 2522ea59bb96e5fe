"""Relation categories 1-1, 1-N, N-1 and N-N, the breakdown link-prediction papers report.

A model can do well overall by being good at one-to-one relations only; splitting the metrics by
how many answers a query usually has shows where it wins or loses. The rule is Bordes et al.'s
(2013), with Wang et al.'s (2014) averages: for relation r, tph = the mean number of distinct tails
per head that occurs with r, hpt = the mean number of distinct heads per tail; a side is "N" when its
average reaches 1.5. Both come from the training triples, which is all a model has seen.
"""

from __future__ import annotations

import torch
from torch import Tensor

RELATION_CATEGORIES: tuple[str, ...] = ("1-1", "1-N", "N-1", "N-N")
UNSEEN_CATEGORY = "unseen"  # relations with no training triple, so no tph or hpt
MANY_THRESHOLD = 1.5


def categorize_relations(train_triples: Tensor, num_relations: int) -> tuple[str, ...]:
    """The category of every relation id in ``[0, num_relations)``, from the training triples.

    "1-N" means one head, many tails (tph >= 1.5, hpt < 1.5), the reading of Bordes et al.
    Duplicate triples are counted once, so a repeated line cannot push a relation to "N".

    Args:
        train_triples: (M, 3) integer (head, relation, tail) rows.
        num_relations: how many relation ids the graph has; ids absent from train are "unseen".

    Returns:
        One of ``RELATION_CATEGORIES`` or ``UNSEEN_CATEGORY`` per relation id.
    """
    tails_per_head, heads_per_tail = partner_averages(train_triples, num_relations)
    categories = []
    for tph, hpt in zip(tails_per_head.tolist(), heads_per_tail.tolist()):
        if tph != tph:  # NaN: the relation has no training triple
            categories.append(UNSEEN_CATEGORY)
        else:
            many_heads, many_tails = hpt >= MANY_THRESHOLD, tph >= MANY_THRESHOLD
            categories.append(f"{'N' if many_heads else '1'}-{'N' if many_tails else '1'}")
    return tuple(categories)


def partner_averages(train_triples: Tensor, num_relations: int) -> tuple[Tensor, Tensor]:
    """(R,) float64 tph and hpt per relation; NaN for a relation without training triples.

    Over the heads of r, the mean count of distinct tails is (distinct triples of r) / (distinct
    heads of r), since every distinct triple adds one tail to one head; likewise for hpt.
    """
    if isinstance(num_relations, bool) or not isinstance(num_relations, int) or num_relations < 1:
        raise ValueError(f"num_relations must be a positive int, got {num_relations!r}")
    if train_triples.ndim != 2 or train_triples.shape[1] != 3:
        raise ValueError(f"train_triples must have shape (M, 3), got {tuple(train_triples.shape)}")
    if train_triples.is_floating_point() or train_triples.dtype == torch.bool:
        raise ValueError(f"train_triples must be an integer tensor, got {train_triples.dtype}")
    triples = torch.unique(train_triples.detach().to(device="cpu", dtype=torch.long), dim=0)  # (M', 3)
    relations = triples[:, 1]
    if relations.numel() and (int(relations.min()) < 0 or int(relations.max()) >= num_relations):
        raise ValueError(f"train_triples has relation ids outside [0, {num_relations})")
    num_triples = _count_per_relation(relations, num_relations)  # (R,)
    num_heads = _count_per_relation(torch.unique(triples[:, :2], dim=0)[:, 1], num_relations)  # (R,)
    num_tails = _count_per_relation(torch.unique(triples[:, 1:], dim=0)[:, 0], num_relations)  # (R,)
    return num_triples / num_heads, num_triples / num_tails  # 0 / 0 = NaN where r is unseen


def _count_per_relation(relations: Tensor, num_relations: int) -> Tensor:
    return torch.bincount(relations, minlength=num_relations).to(torch.float64)  # (R,)
