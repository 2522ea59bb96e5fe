"""Corruption-based negative sampling, on the device, with no per-triple Python.

A sampler decides for each positive (h, r, t) which side to corrupt and draws k replacement entities.
Replacements that would form a known training triple (false negatives) are redrawn a few times and any
that remain are masked out, so the loss never pushes a true triple down. Samplers differ only in the
corruption rule (`uniform` or `bernoulli` sides); `dhns.sampling.cache` draws the replacements from a cache of
high scorers instead. The sampler presets of params.yaml (`self_adversarial`, `nscaching`, `dhns`, ...) add the
loss's weighting and generated negatives (`dhns.config.NegativeScheme`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dhns import native

Tensor = torch.Tensor


@dataclass(frozen=True)
class Negatives:
    entities: Tensor  # (B, k) replacement entity ids
    corrupt_tail: Tensor  # (B,) True: (h, r, e'); False: (e', r, t)
    valid: Tensor  # (B, k) False where the corruption is a known training triple


def triple_keys(triples: Tensor, num_entities: int, num_relations: int) -> Tensor:
    """One int64 per (h, r, t), so membership tests become a sorted search."""
    return (triples[..., 0] * num_relations + triples[..., 1]) * num_entities + triples[..., 2]


class KeySet:
    """Exact membership of int64 keys, cheaper than a sorted search of every query.

    A bitmap over `key mod p` (p a prime about 32x the number of keys) rules out almost every random
    query with one cache-resident lookup; only the few percent it cannot rule out are searched in the
    sorted keys. On an MKG-Y training batch (2000 x 64 draws, 21k known triples) that took 1.7 ms
    against 3.2 ms for searching them all (2 threads). On accelerators the plain sorted search is kept:
    selecting the uncertain queries would wait for the device.
    """

    def __init__(self, keys: Tensor) -> None:
        self.keys = torch.unique(keys)  # sorted
        self.modulus = prime_at_least(min(2**27, max(1021, 32 * self.keys.numel())))
        self.bitmap = torch.zeros(self.modulus, dtype=torch.bool, device=self.keys.device)
        self.bitmap[self.keys % self.modulus] = True

    def to(self, device: torch.device | str) -> "KeySet":
        self.keys, self.bitmap = self.keys.to(device), self.bitmap.to(device)
        return self

    def contains(self, queries: Tensor) -> Tensor:
        """Bool tensor of the queries' shape: True where the query is one of the keys."""
        if queries.device.type != "cpu":
            return self._search(queries)
        maybe = self.bitmap[queries % self.modulus]
        found = maybe.clone()
        found[maybe] = self._search(queries[maybe])
        return found

    def _search(self, queries: Tensor) -> Tensor:
        if self.keys.numel() == 0:
            return torch.zeros(queries.shape, dtype=torch.bool, device=queries.device)
        position = torch.searchsorted(self.keys, queries).clamp(max=self.keys.numel() - 1)
        return self.keys[position] == queries


def prime_at_least(n: int) -> int:
    def is_prime(m: int) -> bool:
        return m >= 2 and all(m % d for d in range(2, int(m**0.5) + 1))

    while not is_prime(n):
        n += 1
    return n


class NegativeSampler:
    """Template: subclasses only choose the corrupted side; drawing and filtering are shared."""

    def __init__(
        self,
        train_triples: Tensor,
        num_entities: int,
        num_relations: int,
        num_negatives: int,
        redraws: int = 3,
    ) -> None:
        if num_entities < 2:
            raise ValueError("negative sampling needs at least two entities")
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.num_negatives = num_negatives
        self.redraws = redraws
        self.known = KeySet(triple_keys(train_triples, num_entities, num_relations))

    def to(self, device: torch.device | str) -> "NegativeSampler":
        self.known.to(device)
        return self

    def corrupt_tail_probability(self, relations: Tensor) -> Tensor:
        """(B,) probability of replacing the tail rather than the head."""
        raise NotImplementedError

    def sample(self, positives: Tensor, generator: torch.Generator | None = None) -> Negatives:
        batch, device = positives.shape[0], positives.device
        probability = self.corrupt_tail_probability(positives[:, 1])
        corrupt_tail = torch.rand(batch, device=device, generator=generator) < probability
        shape = (batch, self.num_negatives)
        # every round drawn up front (a fixed count: no host sync to ask whether any are left)
        draws = torch.stack([torch.randint(self.num_entities, shape, device=device, generator=generator)
                             for _ in range(1 + self.redraws)])
        if draws.device.type == "cpu" and native.available():
            entities, valid = native.filter_negatives(positives, corrupt_tail, draws, self.known.bitmap,
                                                      self.known.keys, self.num_entities, self.num_relations)
        else:
            entities, valid = self._filter(positives, corrupt_tail, draws)
        return Negatives(entities=entities, corrupt_tail=corrupt_tail, valid=valid)

    def _filter(self, positives: Tensor, corrupt_tail: Tensor, draws: Tensor) -> tuple[Tensor, Tensor]:
        """Per slot, the first draw that forms no known triple, else the last draw, masked out."""
        entities = draws[0]
        valid = ~self._is_known(positives, entities, corrupt_tail)
        for redraw in draws[1:]:
            entities = torch.where(valid, entities, redraw)
            valid = ~self._is_known(positives, entities, corrupt_tail)
        return entities, valid

    def refresh(self, model: torch.nn.Module, positives: Tensor, generator: torch.Generator | None = None) -> None:
        """After each optimiser step: a sampler that follows the model (`dhns.sampling.cache`) updates its state."""

    def state_dict(self) -> dict:
        """What changes during training (a checkpoint carries it); a corrupting sampler has nothing."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""

    def _is_known(self, positives: Tensor, entities: Tensor, corrupt_tail: Tensor) -> Tensor:
        heads = torch.where(corrupt_tail.unsqueeze(1), positives[:, :1], entities)
        tails = torch.where(corrupt_tail.unsqueeze(1), entities, positives[:, 2:])
        keys = (heads * self.num_relations + positives[:, 1:2]) * self.num_entities + tails  # (B, k)
        return self.known.contains(keys)


class UniformSampler(NegativeSampler):
    """Head or tail with equal probability (Bordes et al., 2013)."""

    def corrupt_tail_probability(self, relations: Tensor) -> Tensor:
        return torch.full(relations.shape, 0.5, device=relations.device)


class BernoulliSampler(NegativeSampler):
    """Corrupt the side with more alternatives less often (Wang et al., 2014: TransH).

    For relation r, tph = mean tails per head and hpt = mean heads per tail; the head is replaced with
    probability tph / (tph + hpt), so 1-to-N relations mostly corrupt the head and rarely create false negatives.
    """

    def __init__(self, train_triples: Tensor, num_entities: int, num_relations: int, num_negatives: int, **kw) -> None:
        super().__init__(train_triples, num_entities, num_relations, num_negatives, **kw)
        self.tail_probability = self._tail_probabilities(train_triples, num_relations)

    @staticmethod
    def _tail_probabilities(triples: Tensor, num_relations: int) -> Tensor:
        triples = torch.unique(triples, dim=0)
        relations = triples[:, 1]
        distinct_heads = torch.unique(triples[:, [1, 0]], dim=0)[:, 0]  # one row per (r, h)
        distinct_tails = torch.unique(triples[:, [1, 2]], dim=0)[:, 0]  # one row per (r, t)
        count = torch.bincount(relations, minlength=num_relations).double()
        heads = torch.bincount(distinct_heads, minlength=num_relations).double().clamp(min=1)
        tails = torch.bincount(distinct_tails, minlength=num_relations).double().clamp(min=1)
        tph, hpt = count / heads, count / tails
        head_probability = torch.where(count > 0, tph / (tph + hpt), torch.full_like(tph, 0.5))
        return (1.0 - head_probability).float()

    def to(self, device: torch.device | str) -> "BernoulliSampler":
        super().to(device)
        self.tail_probability = self.tail_probability.to(device)
        return self

    def corrupt_tail_probability(self, relations: Tensor) -> Tensor:
        return self.tail_probability[relations]


SAMPLERS: dict[str, type[NegativeSampler]] = {  # by corruption (`train.corruption`): which side is replaced
    "uniform": UniformSampler,
    "bernoulli": BernoulliSampler,
}


def make_sampler(
    corruption: str, train_triples: Tensor, num_entities: int, num_relations: int, num_negatives: int
) -> NegativeSampler:
    """The sampler for one corruption rule; how the loss weighs its negatives is the loss's business."""
    try:
        cls = SAMPLERS[corruption]
    except KeyError:
        raise ValueError(f"unknown corruption {corruption!r}; valid: {', '.join(SAMPLERS)}") from None
    return cls(train_triples, num_entities, num_relations, num_negatives)
