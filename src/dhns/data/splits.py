"""Split hygiene: report, remove or replace what makes link-prediction numbers untrustworthy.

Leaks between train, valid and test, in-split duplicates and ids unseen in train are counted by
`split_report`; `drop_leaked_triples` makes valid and test disjoint from train and each other;
`hold_out_validation` replaces the file's valid split by a seeded sample of train triples.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from dhns.data.graph import _INT64_MAX, SPLITS, KnowledgeGraph


def _triple_keys(kg: KnowledgeGraph) -> list[np.ndarray]:
    """One int64 key per triple (h*R*E + r*E + t), so set operations become np.unique / np.isin.

    Vocabularies too large for that key fall back to dense keys from a joint row-wise unique.
    """
    arrays = [getattr(kg, split).detach().cpu().numpy() for split in SPLITS]
    entities, relations = kg.num_entities, kg.num_relations
    if entities * relations * entities <= _INT64_MAX:
        return [(rows[:, 0] * relations + rows[:, 1]) * entities + rows[:, 2] for rows in arrays]
    _, inverse = np.unique(np.concatenate(arrays), axis=0, return_inverse=True)
    return np.split(inverse.reshape(-1).astype(np.int64), np.cumsum([len(rows) for rows in arrays])[:-1])


def split_report(kg: KnowledgeGraph) -> dict[str, Any]:
    """JSON-ready counts of what makes link-prediction numbers untrustworthy: leaks, duplicates, unseen ids."""
    keys = dict(zip(SPLITS, _triple_keys(kg)))
    distinct = {split: np.unique(key) for split, key in keys.items()}
    train = kg.train.detach().cpu().numpy()
    seen_entities = np.zeros(kg.num_entities, dtype=bool)
    seen_entities[train[:, 0]] = True
    seen_entities[train[:, 2]] = True
    seen_relations = np.zeros(kg.num_relations, dtype=bool)
    seen_relations[train[:, 1]] = True
    report: dict[str, Any] = {
        "name": kg.name,
        "num_entities": kg.num_entities,
        "num_relations": kg.num_relations,
        "num_entities_unseen_in_train": int((~seen_entities).sum()),
        "num_relations_unseen_in_train": int((~seen_relations).sum()),
    }
    for split in SPLITS:
        rows = getattr(kg, split).detach().cpu().numpy()
        unseen = ~seen_entities[rows[:, 0]] | ~seen_entities[rows[:, 2]] | ~seen_relations[rows[:, 1]]
        report[split] = {
            "num_triples": int(len(rows)),
            "num_distinct": int(len(distinct[split])),
            "num_duplicates": int(len(rows) - len(distinct[split])),
            "num_self_loops": int((rows[:, 0] == rows[:, 2]).sum()),
            "num_with_id_unseen_in_train": int(unseen.sum()),
        }
    report["valid_in_train"] = int(np.isin(distinct["valid"], distinct["train"]).sum())
    report["test_in_train"] = int(np.isin(distinct["test"], distinct["train"]).sum())
    report["valid_in_test"] = int(np.isin(distinct["valid"], distinct["test"]).sum())
    return report


def drop_leaked_triples(kg: KnowledgeGraph) -> tuple[KnowledgeGraph, dict[str, Any]]:
    """Make valid and test disjoint from train and from each other, keeping test as large as possible.

    Policy: train is untouched. Test loses its in-split duplicates and triples also in train. Valid
    loses its duplicates, triples in train, and triples in (cleaned) test: a triple in both valid and
    test is kept in test, so the reported test metric covers the most triples. Kept rows stay in file
    order (first occurrence). Per split the counts satisfy
    before = duplicates + in_train (+ in_test for valid) + after; distinct-triple removals are counted
    once, by the first reason in that order.
    """
    train_keys, valid_keys, test_keys = _triple_keys(kg)
    test_rows, test_counts = _keep_rows(test_keys, [("in_train", train_keys)])
    valid_rows, valid_counts = _keep_rows(valid_keys, [("in_train", train_keys), ("in_test", test_keys[test_rows])])
    cleaned = dataclasses.replace(
        kg, valid=kg.valid[torch.from_numpy(valid_rows)], test=kg.test[torch.from_numpy(test_rows)]
    )
    dropped = {
        "policy": "train untouched; test minus duplicates and train; valid minus duplicates, train and test",
        "train": {"before": len(train_keys), "after": len(train_keys)},
        "valid": valid_counts,
        "test": test_counts,
    }
    return cleaned, dropped


def _keep_rows(keys: np.ndarray, exclusions: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, dict[str, int]]:
    """Row indices of first occurrences not found in any exclusion set, with the reason counts."""
    _, first = np.unique(keys, return_index=True)
    kept = np.sort(first).astype(np.int64)
    counts = {"before": int(len(keys)), "duplicates": int(len(keys) - len(kept))}
    for reason, other in exclusions:
        hit = np.isin(keys[kept], other)
        counts[reason] = int(hit.sum())
        kept = kept[~hit]
    counts["after"] = int(len(kept))
    return kept, counts


def hold_out_validation(kg: KnowledgeGraph, n: int, seed: int) -> tuple[KnowledgeGraph, dict[str, Any]]:
    """Replace the file's validation split by a seeded sample of `n` train triples (`data.valid_from_train`).

    `n == 0` returns `kg` unchanged. Otherwise distinct train triples (all copies of one together, and
    never one that is also a test triple) are drawn in a random order fixed by `seed`; a draw is kept
    only if every entity and the relation of the triple still occur in the train triples left, so no
    id loses its last train occurrence. The draw stops at `n` kept triples; if the constraint allows
    fewer, all that the single pass could keep are held out (a maximal set: each skipped triple would
    take away a last occurrence) and the report's `shortfall` says how many are missing. If none can
    be held out a ValueError is raised: an empty validation split could not select a model.

    The new valid split is the held-out triples in draw order, followed by the file's valid triples
    that are known nowhere else (not in the remaining train, test or held-out triples; duplicates
    dropped): those are never trained on, and keeping them in `valid` keeps them in `all_triples()`,
    hence filtered as known true triples, without another split in the prepared format. Test is untouched.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"valid_from_train must be an integer >= 0, got {n!r}")
    if n == 0:
        return kg, {"source": "valid_file", "requested": 0, "num_triples": len(kg.valid),
                    "file_valid_triples": len(kg.valid)}
    train_keys, valid_keys, test_keys = _triple_keys(kg)
    train = kg.train.detach().cpu().numpy()
    distinct, first, inverse, copies = np.unique(train_keys, return_index=True, return_inverse=True,
                                                 return_counts=True)
    candidates = np.flatnonzero(~np.isin(distinct, test_keys))
    order = np.random.default_rng(seed % 2**64).permutation(candidates)
    entity_count = (np.bincount(train[:, 0], minlength=kg.num_entities)
                    + np.bincount(train[:, 2], minlength=kg.num_entities)).tolist()
    relation_count = np.bincount(train[:, 1], minlength=kg.num_relations).tolist()
    rows, multiplicity = train[first].tolist(), copies.tolist()
    chosen: list[int] = []
    for index in order.tolist():
        if len(chosen) == n:
            break
        (head, relation, tail), m = rows[index], multiplicity[index]
        entity_count[head] -= m
        entity_count[tail] -= m  # a self-loop takes two occurrences of its entity
        relation_count[relation] -= m
        if entity_count[head] > 0 and entity_count[tail] > 0 and relation_count[relation] > 0:
            chosen.append(index)
        else:
            entity_count[head] += m
            entity_count[tail] += m
            relation_count[relation] += m
    if not chosen:
        raise ValueError(
            f"valid_from_train={n}: no train triple of {kg.name} can be held out without taking away the last "
            f"train occurrence of an entity or relation (or every train triple is also a test triple)"
        )
    chosen_array = np.asarray(chosen, dtype=np.int64)
    held_out_rows = first[chosen_array].astype(np.int64)
    in_held_out = np.isin(inverse.reshape(-1), chosen_array)
    file_rows, file_counts = _keep_rows(
        valid_keys,
        [("in_train", train_keys[~in_held_out]), ("in_test", test_keys), ("in_held_out", distinct[chosen_array])],
    )
    valid = torch.cat([kg.train[torch.from_numpy(held_out_rows)], kg.valid[torch.from_numpy(file_rows)]])
    held_out = dataclasses.replace(kg, train=kg.train[torch.from_numpy(~in_held_out)], valid=valid)
    report = {
        "source": "valid_from_train",
        "requested": n,
        "seed": seed,
        "num_triples": len(valid),
        "held_out": len(chosen),
        "shortfall": n - len(chosen),
        "file_valid_triples": len(kg.valid),
        "file_valid_kept": int(len(file_rows)),
        "file_valid": file_counts,
        "train": {"before": len(kg.train), "after": len(held_out.train)},
        "policy": "held-out train sample (every entity and relation kept in train) + file valid triples known "
                  "nowhere else; file valid never trained on; test untouched",
    }
    return held_out, report
