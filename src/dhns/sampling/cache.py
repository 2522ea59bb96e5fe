"""NSCaching (Zhang et al., ICDE 2019): negatives drawn from a small cache of high-scoring real entities per query.

Hard negatives without a generator. Each (h, r) of the training triples keeps a cache of N1 candidate tails and
each (r, t) one of N1 candidate heads. A positive's k negatives are drawn uniformly, with replacement, from the
cache of the side its corruption rule replaces. After each optimiser step the caches of the batch's queries are
refreshed: their N1 cached entities and N2 entities drawn uniformly compete, scored by the model, and `importance`
keeps N1 of them drawn without replacement with probability proportional to exp(score) (Gumbel top-k, Kool et al.,
2019), `top` the N1 highest. So the cache follows the model, and the uniform pool keeps exploring.

An entity that would form a training triple with the query (a false negative), or repeats one already competing,
never enters a cache. A slot left without an admissible entity stays empty (`EMPTY`) and its draws are masked out
of the loss, as the corrupting samplers mask the false negatives they fail to redraw.
"""

from __future__ import annotations

import torch

from dhns.sampling.negatives import Negatives, NegativeSampler

Tensor = torch.Tensor

EMPTY = -1  # a cache slot that holds no entity
REFRESH_RULES = ("importance", "top")
FILL_CHUNK = 65536  # queries filled at once: bounds the first fill's memory on large graphs


class QueryRows:
    """The row of each (anchor, relation) query in a cache table: a sorted search of the queries' keys.

    The anchor is the side a cache's entities are paired with: the head of an (h, r) query, the tail of (r, t).
    """

    def __init__(self, anchors: Tensor, relations: Tensor, num_relations: int) -> None:
        self.num_relations = num_relations
        self.keys = torch.unique(anchors * num_relations + relations)  # sorted

    def __len__(self) -> int:
        return self.keys.numel()

    def to(self, device: torch.device | str) -> "QueryRows":
        self.keys = self.keys.to(device)
        return self

    def anchors(self, rows: Tensor) -> Tensor:
        return torch.div(self.keys[rows], self.num_relations, rounding_mode="floor")

    def relations(self, rows: Tensor) -> Tensor:
        return self.keys[rows] % self.num_relations

    def rows(self, anchors: Tensor, relations: Tensor) -> Tensor:
        """Row of each query; a query no training triple has is an error (its cache was never built)."""
        keys = anchors * self.num_relations + relations
        rows = torch.searchsorted(self.keys, keys).clamp(max=len(self) - 1)
        if not bool((self.keys[rows] == keys).all()):
            raise ValueError("the cache sampler was asked for a query no training triple has: its positives must be "
                             "training triples")
        return rows


class CacheSampler(NegativeSampler):
    """Replacements from each query's cache; `sides` (uniform or Bernoulli) decides which side is replaced.

    The caches are filled on the first draw, from the generator the draws use, so a seed fixes them; a checkpoint
    carries them (`state_dict`), so a resumed run continues from the same caches.
    """

    def __init__(self, sides: NegativeSampler, train_triples: Tensor, cache_size: int, pool_size: int,
                 refresh_rule: str) -> None:
        if refresh_rule not in REFRESH_RULES:
            raise ValueError(f"unknown cache refresh rule {refresh_rule!r}; valid: {', '.join(REFRESH_RULES)}")
        if cache_size < 1 or pool_size < 1:
            raise ValueError(f"cache size and refresh pool must be >= 1, got {cache_size} and {pool_size}")
        self.sides = sides
        self.num_entities, self.num_relations = sides.num_entities, sides.num_relations
        self.num_negatives, self.redraws, self.known = sides.num_negatives, 0, sides.known
        self.cache_size, self.pool_size, self.refresh_rule = cache_size, pool_size, refresh_rule
        train_triples = train_triples.to(self.known.keys.device)
        self.tail_queries = QueryRows(train_triples[:, 0], train_triples[:, 1], self.num_relations)  # (h, r)
        self.head_queries = QueryRows(train_triples[:, 2], train_triples[:, 1], self.num_relations)  # (r, t)
        self.tail_cache: Tensor | None = None  # (queries (h, r), N1) tails
        self.head_cache: Tensor | None = None  # (queries (r, t), N1) heads

    def to(self, device: torch.device | str) -> "CacheSampler":
        self.sides.to(device)
        self.tail_queries.to(device)
        self.head_queries.to(device)
        if self.tail_cache is not None:
            self.tail_cache, self.head_cache = self.tail_cache.to(device), self.head_cache.to(device)
        return self

    def corrupt_tail_probability(self, relations: Tensor) -> Tensor:
        return self.sides.corrupt_tail_probability(relations)

    def sample(self, positives: Tensor, generator: torch.Generator | None = None) -> Negatives:
        device, batch = positives.device, positives.shape[0]
        if self.tail_cache is None:
            self._fill(device, generator)
        probability = self.corrupt_tail_probability(positives[:, 1])
        corrupt_tail = torch.rand(batch, device=device, generator=generator) < probability
        slots = torch.randint(self.cache_size, (batch, self.num_negatives), device=device, generator=generator)
        tails = self.tail_cache[self.tail_queries.rows(positives[:, 0], positives[:, 1])]  # (B, N1)
        heads = self.head_cache[self.head_queries.rows(positives[:, 2], positives[:, 1])]
        drawn = torch.where(corrupt_tail.unsqueeze(1), tails, heads).gather(1, slots)  # (B, k)
        return Negatives(entities=drawn.clamp(min=0), corrupt_tail=corrupt_tail, valid=drawn != EMPTY)

    @torch.no_grad()
    def refresh(self, model: torch.nn.Module, positives: Tensor, generator: torch.Generator | None = None) -> None:
        """After a step: both caches of each distinct query in the batch compete with a fresh uniform pool."""
        tail_rows = torch.unique(self.tail_queries.rows(positives[:, 0], positives[:, 1]))
        self.tail_cache[tail_rows] = self._refreshed(model, self.tail_queries, tail_rows, self.tail_cache[tail_rows],
                                                     True, generator)
        head_rows = torch.unique(self.head_queries.rows(positives[:, 2], positives[:, 1]))
        self.head_cache[head_rows] = self._refreshed(model, self.head_queries, head_rows, self.head_cache[head_rows],
                                                     False, generator)

    def state_dict(self) -> dict:
        if self.tail_cache is None:
            return {}
        return {"tail_cache": self.tail_cache.cpu(), "head_cache": self.head_cache.cpu()}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        device = self.known.keys.device
        for name, queries in (("tail_cache", self.tail_queries), ("head_cache", self.head_queries)):
            if tuple(state[name].shape) != (len(queries), self.cache_size):
                raise ValueError(f"checkpoint {name} has shape {tuple(state[name].shape)}, expected "
                                 f"({len(queries)}, {self.cache_size}): another graph or cache size")
        self.tail_cache, self.head_cache = state["tail_cache"].to(device), state["head_cache"].to(device)

    def _fill(self, device: torch.device, generator: torch.Generator | None) -> None:
        """Every cache from N1 + N2 uniform draws, N1 kept uniformly among the admissible ones (no scores yet)."""
        caches = []
        for queries, corrupt_tail in ((self.tail_queries, True), (self.head_queries, False)):
            parts = []
            for start in range(0, len(queries), FILL_CHUNK):
                rows = torch.arange(start, min(start + FILL_CHUNK, len(queries)), device=device)
                candidates = self._draw_pool(rows.numel(), self.cache_size + self.pool_size, device, generator)
                excluded = self._inadmissible(*anchored_queries(queries, rows, corrupt_tail), candidates)
                scores = torch.zeros(candidates.shape, device=device)
                parts.append(keep(candidates, scores, excluded, self.cache_size, "importance", generator))
            caches.append(torch.cat(parts))
        self.tail_cache, self.head_cache = caches

    def _refreshed(self, model: torch.nn.Module, queries: QueryRows, rows: Tensor, cached: Tensor, corrupt_tail: bool,
                   generator: torch.Generator | None) -> Tensor:
        pool = self._draw_pool(rows.numel(), self.pool_size, cached.device, generator)
        candidates = torch.cat([cached, pool], dim=1)  # cached first: a repeat keeps the cached copy
        anchored, sides = anchored_queries(queries, rows, corrupt_tail)
        excluded = self._inadmissible(anchored, sides, candidates)
        _, scores = model.score_corrupted(anchored, candidates.clamp(min=0), sides)
        return keep(candidates, scores.float(), excluded, self.cache_size, self.refresh_rule, generator)

    def _draw_pool(self, rows: int, size: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
        return torch.randint(self.num_entities, (rows, size), device=device, generator=generator)

    def _inadmissible(self, anchored: Tensor, sides: Tensor, candidates: Tensor) -> Tensor:
        """(Q, C) True where a candidate is empty, forms a training triple with its query, or repeats one before it."""
        known = self._is_known(anchored, candidates.clamp(min=0), sides)
        return (candidates == EMPTY) | known | repeated(candidates)


def anchored_queries(queries: QueryRows, rows: Tensor, corrupt_tail: bool) -> tuple[Tensor, Tensor]:
    """Each query as a (Q, 3) triple with its anchor on both sides, and the (Q,) side its candidates replace: the
    form in which the model scores candidates and the training-triple filter checks them."""
    anchors = queries.anchors(rows)
    anchored = torch.stack([anchors, queries.relations(rows), anchors], dim=1)
    return anchored, torch.full((rows.numel(),), corrupt_tail, dtype=torch.bool, device=rows.device)


def repeated(candidates: Tensor) -> Tensor:
    """(Q, C) True where a row's value already occurred to its left."""
    ordered, order = torch.sort(candidates, dim=1, stable=True)
    again = torch.zeros_like(ordered, dtype=torch.bool)
    again[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    return torch.zeros_like(again).scatter_(1, order, again)


def keep(candidates: Tensor, scores: Tensor, excluded: Tensor, size: int, rule: str,
         generator: torch.Generator | None) -> Tensor:
    """(Q, size) of each row's candidates: drawn without replacement with probability ~ exp(score) (`importance`),
    or the highest scores (`top`); excluded candidates never, and slots beyond the admissible ones `EMPTY`.

    Adding standard Gumbel noise to the log-weights and taking the top `size` draws exactly `size` items without
    replacement, each next one with probability proportional to its weight among those left.
    """
    keys = scores
    if rule == "importance":
        uniform = torch.rand(scores.shape, device=scores.device, generator=generator)
        keys = scores - torch.log(-torch.log(uniform.clamp_(min=torch.finfo(uniform.dtype).tiny)))
    keys = keys.masked_fill(excluded, float("-inf"))
    best = torch.topk(keys, size, dim=1)
    chosen = candidates.gather(1, best.indices)
    return torch.where(torch.isneginf(best.values), torch.full_like(chosen, EMPTY), chosen)
