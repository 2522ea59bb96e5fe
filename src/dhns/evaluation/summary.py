"""From per-query ranks to the reported metrics: overall, per relation category, and without self-loops.

Every breakdown is a row subset of one `TripleRanks`, so a split is ranked once however many ways
it is reported, and a subset's numbers are exactly those of evaluating its triples alone (the
filter depends on the known triples, not on which test triples are evaluated together).

`split_headline` then parts the report in two for DVC: a headline a terminal can show
(`dvc metrics show`, `dvc exp show`) and the breakdowns, hundreds of values, beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dhns.evaluation.categories import RELATION_CATEGORIES, UNSEEN_CATEGORY
from dhns.evaluation.ranks import DEFAULT_KS, TIE_POLICIES, _check_ks, metrics_from_ranks

SIDES: tuple[str, ...] = ("head", "tail")
# The sections of each split's report that form the headline: pooled directions under every tie policy
# (PyKEEN's ``both``: 3 policies x 8 metrics) and the evaluation time. Everything else is a breakdown.
HEADLINE_SECTIONS: tuple[str, ...] = ("both", "seconds")


@dataclass(frozen=True, eq=False)
class TripleRanks:
    """Filtered ranks of M triples, both sides, all tie policies, with each query's candidate count.

    Row i of every tensor belongs to the i-th evaluated triple. The counts (entities the answer was
    ranked among, itself included) are what chance-adjusted metrics need.
    """

    ranks: dict[str, dict[str, Tensor]]  # side -> tie policy -> (M,) float64, CPU
    num_candidates: dict[str, Tensor]  # side -> (M,) int64, CPU

    @property
    def num_triples(self) -> int:
        return int(self.num_candidates["tail"].shape[0])

    def select(self, rows: Tensor) -> TripleRanks:
        """The ranks of the triples at ``rows`` ((K,) int64 indices or (M,) bool), in that order."""
        rows = rows.to("cpu")
        return TripleRanks(
            ranks={side: {p: r[rows] for p, r in by_policy.items()} for side, by_policy in self.ranks.items()},
            num_candidates={side: c[rows] for side, c in self.num_candidates.items()},
        )


def summarize_ranks(ranks: TripleRanks, ks: Sequence[int] = DEFAULT_KS) -> dict[str, dict[str, dict[str, Any]]]:
    """Metrics per side and pooled over both sides, as in PyKEEN's ``head``/``tail``/``both``.

    ``both`` pools the 2M individual ranks (not an average of the two side means), which is the
    number papers report as "filtered MRR".
    """
    ks = _check_ks(ks)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for side in SIDES:
        summary[side] = {
            p: metrics_from_ranks(ranks.ranks[side][p], ks, num_candidates=ranks.num_candidates[side])
            for p in TIE_POLICIES
        }
    pooled_candidates = torch.cat([ranks.num_candidates[side] for side in SIDES])
    summary["both"] = {
        p: metrics_from_ranks(torch.cat([ranks.ranks[side][p] for side in SIDES]), ks, num_candidates=pooled_candidates)
        for p in TIE_POLICIES
    }
    return summary


def summarize_subset(ranks: TripleRanks, rows: Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """`summarize_ranks` of the triples at ``rows`` plus ``num_triples``; only the count when ``rows`` is empty."""
    subset = ranks.select(rows)
    summary: dict[str, Any] = dict(summarize_ranks(subset, ks)) if subset.num_triples else {}
    summary["num_triples"] = subset.num_triples
    return summary


def summarize_by_category(
    ranks: TripleRanks, relations: Tensor, relation_categories: Sequence[str], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, dict[str, Any]]:
    """Metrics of each relation category's triples, with how many relations and triples it has.

    Args:
        ranks: the ranks of M triples.
        relations: (M,) relation id of each ranked triple.
        relation_categories: the category of every relation id (see `categorize_relations`).

    Returns:
        ``{category: {"head", "tail", "both", "num_relations", "num_triples"}}`` for every category
        that some relation has, in the order 1-1, 1-N, N-1, N-N, unseen, then any other name; a
        category with no triple in this split has the counts only.
    """
    relations = relations.detach().to(device="cpu", dtype=torch.long)
    if relations.shape != (ranks.num_triples,):
        raise ValueError(f"relations must have shape ({ranks.num_triples},), got {tuple(relations.shape)}")
    if relations.numel() and int(relations.max()) >= len(relation_categories):
        raise ValueError(f"relation id {int(relations.max())} has no category ({len(relation_categories)} given)")
    names = sorted(set(relation_categories), key=_category_order)
    codes = torch.tensor([names.index(c) for c in relation_categories], dtype=torch.long)  # (R,)
    triple_codes = codes[relations]  # (M,)
    breakdown = {}
    for code, name in enumerate(names):
        breakdown[name] = summarize_subset(ranks, (triple_codes == code).nonzero().squeeze(1), ks)
        breakdown[name]["num_relations"] = int((codes == code).sum())
    return breakdown


def summarize_without_self_loops(
    ranks: TripleRanks, triples: Tensor, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, Any] | None:
    """Metrics of the triples with head != tail, and how many were excluded; None when there is no self-loop.

    A self-loop's head and tail queries ask the same entity and a model may learn "answer the query
    entity" for them, so results with and without them are reported apart (DB15K has some).
    """
    is_self_loop = (triples[:, 0] == triples[:, 2]).to("cpu")  # (M,)
    num_excluded = int(is_self_loop.sum())
    if num_excluded == 0:
        return None
    section = summarize_subset(ranks, torch.logical_not(is_self_loop).nonzero().squeeze(1), ks)
    section["num_excluded"] = num_excluded
    return section


def summarize_without_unseen(
    ranks: TripleRanks, triples: Tensor, train_triples: Tensor, num_entities: int, num_relations: int,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, Any] | None:
    """Metrics of the triples whose head, relation and tail all occur in training; None when every one does.

    A model has learned nothing about an entity or relation no training triple holds (its embedding is its
    initialisation), so a split with such triples (DB15K's test has 84) is also reported without them.
    ``num_excluded`` counts the triples left out, ``unseen_entities`` and ``unseen_relations`` the distinct
    ids that caused it.
    """
    train_triples, triples = train_triples.to("cpu", torch.long), triples.to("cpu", torch.long)
    seen_entities = torch.zeros(num_entities, dtype=torch.bool)
    seen_entities[train_triples[:, 0]] = True
    seen_entities[train_triples[:, 2]] = True
    seen_relations = torch.zeros(num_relations, dtype=torch.bool)
    seen_relations[train_triples[:, 1]] = True
    heads, relations, tails = triples.unbind(1)
    known = seen_entities[heads] & seen_relations[relations] & seen_entities[tails]  # (M,)
    if bool(known.all()):
        return None
    section = summarize_subset(ranks, known.nonzero().squeeze(1), ks)
    entities = torch.cat([heads, tails])
    section["num_excluded"] = int((~known).sum())
    section["unseen_entities"] = int(torch.unique(entities[~seen_entities[entities]]).numel())
    section["unseen_relations"] = int(torch.unique(relations[~seen_relations[relations]]).numel())
    return section


def split_headline(results: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Part ``{split: report}`` into the headline and the breakdowns, each value in exactly one of them.

    Sections move whole and keep their names, so a path reads the same in either file
    (``test.both.realistic.mrr`` in the headline, ``test.head.realistic.mrr`` and
    ``test.by_category.N-N.both.realistic.mrr`` in the breakdowns), and merging the two per split,
    ``{**headline[split], **breakdowns[split]}``, gives the report back. The headline holds the
    `HEADLINE_SECTIONS`; the breakdowns everything else: ``head``, ``tail``, ``num_triples``,
    ``num_self_loops``, ``without_self_loops``, ``without_unseen``, ``by_category`` and any section added later.
    """
    headline: dict[str, dict] = {}
    breakdowns: dict[str, dict] = {}
    for split, report in results.items():
        headline[split] = {key: value for key, value in report.items() if key in HEADLINE_SECTIONS}
        breakdowns[split] = {key: value for key, value in report.items() if key not in HEADLINE_SECTIONS}
    return headline, breakdowns


def _category_order(name: str) -> tuple[int, str]:
    known = (*RELATION_CATEGORIES, UNSEEN_CATEGORY)
    return (known.index(name), "") if name in known else (len(known), name)
