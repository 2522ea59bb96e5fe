"""Filtered link-prediction evaluation over a split, in chunks of queries.

Every test triple (h, r, t) is asked twice: "(h, r, ?)" ranks t among all entities and "(?, r, t)"
ranks h. In the filtered setting (Bordes et al., 2013) every other entity that also forms a known
triple (from train, valid or test) is removed from the candidates, so a model is not penalised for
ranking another correct answer first. Models are reached only through the `LinkScorer` protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from dhns.evaluation.ranks import DEFAULT_KS, TIE_POLICIES, _check_ks, count_candidates, ranks_from_scores
from dhns.evaluation.summary import (
    SIDES,
    TripleRanks,
    summarize_by_category,
    summarize_ranks,
    summarize_without_self_loops,
    summarize_without_unseen,
)

logger = logging.getLogger(__name__)


@runtime_checkable
class LinkScorer(Protocol):
    """What the evaluator needs from a model: all-entity scores for a batch of queries, higher = better."""

    num_entities: int

    def score_tails(self, heads: Tensor, relations: Tensor) -> Tensor:
        """(B,) long heads, (B,) long relations -> (B, num_entities) float scores of every tail."""
        ...

    def score_heads(self, relations: Tensor, tails: Tensor) -> Tensor:
        """(B,) long relations, (B,) long tails -> (B, num_entities) float scores of every head."""
        ...


@dataclass(frozen=True, eq=False)
class _Postings:
    """CSR map from an int64 pair key to the sorted entity ids known for it.

    ``values[offsets[i]:offsets[i + 1]]`` are the entities for ``keys[i]``; ``keys`` is sorted and
    unique, so a batch of queries is resolved by one ``searchsorted``.
    """

    keys: Tensor  # (U,) int64, sorted, unique
    offsets: Tensor  # (U + 1,) int64
    values: Tensor  # (K',) int64, sorted within each key's slice

    def to(self, device: torch.device | str) -> _Postings:
        return _Postings(self.keys.to(device), self.offsets.to(device), self.values.to(device))

    def mask(self, query_keys: Tensor, num_entities: int) -> Tensor:
        """(B,) int64 keys -> (B, num_entities) bool, True where the entity is known for that row.

        Gathers all (row, entity) pairs of the batch with vectorised index arithmetic and writes
        them with a single ``index_put_``; there is no per-query Python work.
        """
        device = self.keys.device
        num_rows = query_keys.shape[0]
        out = torch.zeros(num_rows, num_entities, dtype=torch.bool, device=device)  # (B, N)
        if num_rows == 0 or self.keys.shape[0] == 0:
            return out
        starts, lengths = self._locate(query_keys.to(device))  # (B,), (B,)
        total = int(lengths.sum())
        if total == 0:
            return out
        row_ids = torch.arange(num_rows, device=device)  # (B,)
        rows = torch.repeat_interleave(row_ids, lengths, output_size=total)  # (P,) one per (row, entity) pair
        # Position of each pair inside its row's slice: global pair index minus the row's first pair index.
        row_first_pair = torch.cumsum(lengths, dim=0) - lengths  # (B,)
        within = torch.arange(total, device=device) - row_first_pair[rows]  # (P,)
        entities = self.values[starts[rows] + within]  # (P,)
        out.index_put_((rows, entities), torch.ones((), dtype=torch.bool, device=device))
        return out

    def count(self, query_keys: Tensor) -> Tensor:
        """(B,) int64 keys -> (B,) int64 number of entities known for each: what a row of `mask` would sum to, without building it."""
        query_keys = query_keys.to(self.keys.device)
        if self.keys.shape[0] == 0:
            return torch.zeros_like(query_keys)
        return self._locate(query_keys)[1]

    def _locate(self, query_keys: Tensor) -> tuple[Tensor, Tensor]:
        """(B,) keys -> (B,) start offset and (B,) length of each key's slice of ``values`` (0 if unknown)."""
        num_keys = self.keys.shape[0]
        pos = torch.searchsorted(self.keys, query_keys)  # (B,)
        pos_clamped = pos.clamp(max=num_keys - 1)
        found = (pos < num_keys) & (self.keys[pos_clamped] == query_keys)  # (B,)
        starts = torch.where(found, self.offsets[pos_clamped], torch.zeros_like(pos))  # (B,)
        lengths = torch.where(found, self.offsets[pos_clamped + 1] - starts, torch.zeros_like(pos))  # (B,)
        return starts, lengths


@dataclass(frozen=True, eq=False)
class FilterIndex:
    """Known (h, r) -> tails and (r, t) -> heads, for building per-chunk filter masks on any device.

    Pair keys are ``relation * num_entities + entity``; entity ids are validated to lie in
    ``[0, num_entities)``, so keys are unique for any relation id, including relations that never
    occur in the known triples (those simply have nothing to filter).
    """

    num_entities: int
    num_known: int  # distinct known triples
    tails_by_head_relation: _Postings
    heads_by_relation_tail: _Postings

    @property
    def device(self) -> torch.device:
        return self.tails_by_head_relation.keys.device

    def to(self, device: torch.device | str) -> FilterIndex:
        """Copy to ``device`` once, so per-chunk mask building never crosses devices."""
        if torch.device(device) == self.device:
            return self
        return FilterIndex(
            self.num_entities,
            self.num_known,
            self.tails_by_head_relation.to(device),
            self.heads_by_relation_tail.to(device),
        )

    def tail_mask(self, heads: Tensor, relations: Tensor) -> Tensor:
        """(B,) heads, (B,) relations -> (B, num_entities) bool of known tails of each (h, r)."""
        keys = _pair_keys(relations, heads, self.num_entities)
        return self.tails_by_head_relation.mask(keys, self.num_entities)

    def head_mask(self, relations: Tensor, tails: Tensor) -> Tensor:
        """(B,) relations, (B,) tails -> (B, num_entities) bool of known heads of each (r, t)."""
        keys = _pair_keys(relations, tails, self.num_entities)
        return self.heads_by_relation_tail.mask(keys, self.num_entities)

    def num_known_tails(self, heads: Tensor, relations: Tensor) -> Tensor:
        """(B,) heads, (B,) relations -> (B,) int64 count of known tails: the True entries of `tail_mask`."""
        return self.tails_by_head_relation.count(_pair_keys(relations, heads, self.num_entities))

    def num_known_heads(self, relations: Tensor, tails: Tensor) -> Tensor:
        """(B,) relations, (B,) tails -> (B,) int64 count of known heads: the True entries of `head_mask`."""
        return self.heads_by_relation_tail.count(_pair_keys(relations, tails, self.num_entities))


def build_filter_index(known_triples: Tensor, num_entities: int) -> FilterIndex:
    """Index all known triples (train + valid + test, (head, relation, tail) columns) for filtering.

    Built with sorts and ``unique_consecutive`` only, so DB15K-sized graphs index in well under a
    second; duplicate triples are dropped so masks and ``num_known`` do not depend on them.
    """
    _check_triples(known_triples, num_entities, name="known_triples")
    triples = known_triples.to(torch.long)
    heads, relations, tails = triples[:, 0], triples[:, 1], triples[:, 2]
    by_head_relation = _build_postings(_pair_keys(relations, heads, num_entities), tails)
    by_relation_tail = _build_postings(_pair_keys(relations, tails, num_entities), heads)
    return FilterIndex(
        num_entities=num_entities,
        num_known=int(by_head_relation.values.shape[0]),
        tails_by_head_relation=by_head_relation,
        heads_by_relation_tail=by_relation_tail,
    )


def rank_triples(
    scorer: LinkScorer,
    triples: Tensor,
    filter_index: FilterIndex,
    *,
    batch_size: int = 256,
    show_progress: bool = False,
) -> TripleRanks:
    """Filtered ranks of every triple, both sides, all tie policies: the raw data behind the metrics.

    Kept separate from the summary so one pass serves every breakdown (relation categories,
    self-loops) and analyses that need exact per-query ranks (significance tests between runs).

    Query index tensors are slices of ``triples``, so pass ``triples`` on the device the scorer
    expects. Scores, masks and comparisons stay on the scores' device; only the (B,) ranks and
    candidate counts of each chunk go to CPU, so peak memory is a few (batch_size, num_entities)
    tensors.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    num_entities = filter_index.num_entities
    if int(scorer.num_entities) != num_entities:
        raise ValueError(
            f"scorer has {scorer.num_entities} entities but the filter index has {num_entities}"
        )
    _check_triples(triples, num_entities, name="triples")
    if triples.shape[0] == 0:
        raise ValueError("no triples to evaluate")
    triples = triples.to(torch.long)

    rank_chunks: dict[str, dict[str, list[Tensor]]] = {s: {p: [] for p in TIE_POLICIES} for s in SIDES}
    candidate_chunks: dict[str, list[Tensor]] = {s: [] for s in SIDES}
    index = filter_index
    with torch.inference_mode():
        for start, stop in _progress(_chunk_bounds(triples.shape[0], batch_size), show_progress):
            heads, relations, tails = triples[start:stop].unbind(dim=1)  # each (B,)
            for side in SIDES:
                if side == "tail":
                    scores = scorer.score_tails(heads, relations)  # (B, N)
                    true_index = tails
                else:
                    scores = scorer.score_heads(relations, tails)  # (B, N)
                    true_index = heads
                _check_scores(scores, stop - start, num_entities, side)
                index = index.to(scores.device)
                if side == "tail":
                    mask = index.tail_mask(heads, relations)  # (B, N)
                    num_marked = index.num_known_tails(heads, relations)  # (B,)
                else:
                    mask = index.head_mask(relations, tails)  # (B, N)
                    num_marked = index.num_known_heads(relations, tails)  # (B,)
                true_index = true_index.to(scores.device)
                try:
                    ranks = ranks_from_scores(scores, true_index, mask)
                except ValueError as err:
                    raise ValueError(f"{side} side, triples [{start}, {stop}): {err}") from err
                for policy in TIE_POLICIES:
                    rank_chunks[side][policy].append(ranks[policy].cpu())
                candidate_chunks[side].append(count_candidates(true_index, mask, num_marked).cpu())
    return TripleRanks(
        ranks={side: {p: torch.cat(rank_chunks[side][p]) for p in TIE_POLICIES} for side in SIDES},
        num_candidates={side: torch.cat(candidate_chunks[side]) for side in SIDES},
    )


def evaluate_link_prediction(
    scorer: LinkScorer,
    triples: Tensor,
    filter_index: FilterIndex,
    *,
    batch_size: int = 256,
    ks: Sequence[int] = DEFAULT_KS,
    show_progress: bool = False,
    relation_categories: Sequence[str] | None = None,
    train_triples: Tensor | None = None,
) -> dict[str, Any]:
    """Filtered MRR / mean rank / AMR(I) / hits@k of ``triples`` under all tie policies, as a JSON-ready dict.

    Layout: ``{"head"|"tail"|"both": {"optimistic"|"realistic"|"pessimistic": metrics},
    "num_triples": M, "num_self_loops": #(h == t)}``, then ``"without_self_loops"`` (the same
    metrics over the triples with h != t, and ``num_excluded``) when there is a self-loop, and
    ``"by_category"`` (see `summarize_by_category`) when ``relation_categories`` is given, and
    ``"without_unseen"`` (see `summarize_without_unseen`) when ``train_triples`` is given and some triple
    holds an entity or relation they do not. All sections come from one ranking pass.
    """
    ks = _check_ks(ks)  # fail before the expensive part
    if relation_categories is not None:
        _check_triples(triples, filter_index.num_entities, name="triples")
        if triples.shape[0] and int(triples[:, 1].max()) >= len(relation_categories):
            raise ValueError(f"triples have relation ids without a category ({len(relation_categories)} given)")
    ranks = rank_triples(scorer, triples, filter_index, batch_size=batch_size, show_progress=show_progress)
    result: dict[str, Any] = dict(summarize_ranks(ranks, ks))
    result["num_triples"] = ranks.num_triples
    without_self_loops = summarize_without_self_loops(ranks, triples, ks)
    result["num_self_loops"] = 0 if without_self_loops is None else without_self_loops["num_excluded"]
    if without_self_loops is not None:
        result["without_self_loops"] = without_self_loops
    if relation_categories is not None:
        result["by_category"] = summarize_by_category(ranks, triples[:, 1], relation_categories, ks)
    if train_triples is not None:
        _check_triples(train_triples, filter_index.num_entities, name="train_triples")
        without_unseen = summarize_without_unseen(ranks, triples, train_triples, filter_index.num_entities,
                                                  _num_relations(triples, train_triples, relation_categories), ks)
        if without_unseen is not None:
            result["without_unseen"] = without_unseen
    return result


def _num_relations(triples: Tensor, train_triples: Tensor, relation_categories: Sequence[str] | None) -> int:
    """Enough relation ids for both splits (the categories, when given, name every relation)."""
    largest = max(int(t[:, 1].max()) + 1 if t.shape[0] else 0 for t in (triples, train_triples))
    return max(largest, len(relation_categories or ()))


def _pair_keys(relations: Tensor, entities: Tensor, num_entities: int) -> Tensor:
    """(B,) relation and (B,) entity ids -> (B,) int64 keys unique per pair (entities < num_entities)."""
    return relations.to(torch.long) * num_entities + entities.to(torch.long).to(relations.device)


def _build_postings(keys: Tensor, values: Tensor) -> _Postings:
    """Group ``values`` by ``keys`` into a CSR table, sorted and deduplicated, with tensor ops only."""
    # Lexicographic sort by (key, value): sort by value, then stable sort by key.
    values_sorted, order = torch.sort(values, stable=True)  # (K,)
    keys_by_value = keys[order]  # (K,)
    keys_sorted, order2 = torch.sort(keys_by_value, stable=True)  # (K,)
    values_sorted = values_sorted[order2]  # (K,)
    if keys_sorted.numel():
        is_new = torch.ones_like(keys_sorted, dtype=torch.bool)  # (K,)
        is_new[1:] = (keys_sorted[1:] != keys_sorted[:-1]) | (values_sorted[1:] != values_sorted[:-1])
        keys_sorted, values_sorted = keys_sorted[is_new], values_sorted[is_new]  # (K',)
    unique_keys, counts = torch.unique_consecutive(keys_sorted, return_counts=True)  # (U,)
    offsets = torch.zeros(unique_keys.shape[0] + 1, dtype=torch.long, device=keys.device)  # (U + 1,)
    offsets[1:] = torch.cumsum(counts, dim=0)
    return _Postings(keys=unique_keys, offsets=offsets, values=values_sorted)


def _check_triples(triples: Tensor, num_entities: int, *, name: str) -> None:
    """Out-of-range ids would alias other pairs' keys or index past the score matrix; reject them."""
    if isinstance(num_entities, bool) or not isinstance(num_entities, int) or num_entities < 1:
        raise ValueError(f"num_entities must be a positive int, got {num_entities!r}")
    if triples.ndim != 2 or triples.shape[1] != 3:
        raise ValueError(f"{name} must have shape (M, 3), got {tuple(triples.shape)}")
    if triples.is_floating_point() or triples.is_complex() or triples.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got {triples.dtype}")
    if triples.shape[0] == 0:
        return
    entities = triples[:, [0, 2]]
    if int(entities.min()) < 0 or int(entities.max()) >= num_entities:
        raise ValueError(f"{name} has entity ids outside [0, {num_entities})")
    if int(triples[:, 1].min()) < 0:
        raise ValueError(f"{name} has negative relation ids")


def _check_scores(scores: Tensor, num_rows: int, num_entities: int, side: str) -> None:
    """A scorer returning the wrong shape would otherwise be ranked against the wrong candidates."""
    if not isinstance(scores, Tensor) or scores.shape != (num_rows, num_entities):
        shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"score_{side}s must return ({num_rows}, {num_entities}) scores, got {shape}")


def _chunk_bounds(num_items: int, batch_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + batch_size, num_items)) for start in range(0, num_items, batch_size)]


def _progress(bounds: list[tuple[int, int]], show: bool) -> Iterator[tuple[int, int]]:
    """Wrap in tqdm when asked and installed; otherwise log every ~10% so long runs stay visible."""
    if not show:
        yield from bounds
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        step = max(1, len(bounds) // 10)
        for i, bound in enumerate(bounds):
            if i % step == 0:
                logger.info("evaluating chunk %d/%d", i + 1, len(bounds))
            yield bound
        return
    yield from tqdm(bounds, desc="evaluating", unit="chunk", disable=None)  # None: quiet when not a terminal
