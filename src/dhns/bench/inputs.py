"""The graphs and stand-in features the benchmark times on, and the hardness levels scaled to any T."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from dhns.bench.config import parse_synthetic
from dhns.data import KnowledgeGraph, read_openke_benchmark

Tensor = torch.Tensor


def synthetic_graph(num_triples: int, num_entities: int, num_relations: int, seed: int = 0,
                    holdout: int | None = None) -> KnowledgeGraph:
    """Exactly `num_triples` distinct random training triples, plus disjoint valid and test splits.

    Valid and test get `holdout` triples each (default: a tenth of train, between 1 and 5000).
    """
    holdout = min(max(num_triples // 10, 1), 5000) if holdout is None else holdout
    total = num_triples + 2 * holdout
    capacity = num_entities * num_relations * num_entities
    if total > capacity:
        raise ValueError(f"{total} distinct triples do not fit {num_entities} entities x {num_relations} relations")
    rng = torch.Generator().manual_seed(seed)
    keys = torch.empty(0, dtype=torch.long)
    while keys.numel() < total:  # a few rounds at most: collisions are rare unless the graph is dense
        draw = torch.randint(capacity, (total - keys.numel() + 1024,), generator=rng)
        keys = torch.unique(torch.cat([keys, draw]))
    keys = keys[torch.randperm(keys.numel(), generator=rng)[:total]]
    heads = keys // (num_relations * num_entities)
    relations = keys // num_entities % num_relations
    tails = keys % num_entities
    triples = torch.stack([heads, relations, tails], dim=1)  # (total, 3) (h, r, t)
    names = tuple(f"e{i}" for i in range(num_entities))
    return KnowledgeGraph(
        name=f"synthetic-{num_triples}",
        entity_names=names,
        entity_texts=names,
        relation_names=tuple(f"r{i}" for i in range(num_relations)),
        train=triples[:num_triples],
        valid=triples[num_triples : num_triples + holdout],
        test=triples[num_triples + holdout :],
    )


def load_graph(spec: str, seed: int = 0) -> KnowledgeGraph:
    """An OpenKE folder, or a synthetic graph (see `parse_synthetic`)."""
    synthetic = parse_synthetic(spec)
    if synthetic is None:
        return read_openke_benchmark(Path(spec))
    return synthetic_graph(*synthetic, seed=seed)


def stand_in_features(num_entities: int, modalities: Sequence[tuple[str, int]],
                      seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """Modality -> (random unit-scale vectors (N, d), all-present mask (N,)), as read_feature_bundle shapes it."""
    rng = torch.Generator().manual_seed(seed)
    return {
        name: (torch.randn(num_entities, width, generator=rng) / math.sqrt(width),
               torch.ones(num_entities, dtype=torch.bool))
        for name, width in modalities
    }
