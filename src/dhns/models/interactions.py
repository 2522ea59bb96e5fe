"""KGC scoring functions written as `compare(query, candidate)`.

Every scorer here factors into a query built from the known side of a triple and a comparison with the
candidate entity: TransE scores `gamma - ||(h + r) - t||_1` for tails and `gamma - ||h - (t - r)||_1` for
heads; DistMult `<h * r, t>` and `<h, t * r>`; RotatE `gamma - sum |h o r - t|` and, because |r| = 1,
`gamma - sum |h - t o conj(r)|`. The query is exactly the diffusion condition C(e, r) of the design
notes, so the DiffHEG stage reuses it, and ranking all entities becomes one batched comparison.
"""

from __future__ import annotations

import math

import torch
from torch import nn

Tensor = torch.Tensor


class Interaction(nn.Module):
    """Relation parameters plus the query/compare pair of one scorer."""

    entity_width: int  # real numbers per entity vector
    relation_width: int  # real numbers per relation vector

    def __init__(self, embedding_dim: int, margin: float) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.margin = margin

    def tail_query(self, heads: Tensor, relations: Tensor) -> Tensor:
        """(..., entity_width), (..., relation_width) -> (..., entity_width)."""
        raise NotImplementedError

    def head_query(self, relations: Tensor, tails: Tensor) -> Tensor:
        raise NotImplementedError

    def compare(self, queries: Tensor, candidates: Tensor) -> Tensor:
        """Score broadcastable (..., w) queries against (..., w) candidates -> (...)."""
        raise NotImplementedError

    def compare_all(self, queries: Tensor, entities: Tensor) -> Tensor:
        """(B, w) queries against every (N, w) entity -> (B, N), without a (B, N, w) temporary where possible."""
        return self.compare(queries.unsqueeze(1), entities.unsqueeze(0))

    def init_relations(self, weight: Tensor) -> None:
        nn.init.xavier_uniform_(weight)


class TransE(Interaction):
    def __init__(self, embedding_dim: int, margin: float) -> None:
        super().__init__(embedding_dim, margin)
        self.entity_width = embedding_dim
        self.relation_width = embedding_dim

    def tail_query(self, heads: Tensor, relations: Tensor) -> Tensor:
        return heads + relations

    def head_query(self, relations: Tensor, tails: Tensor) -> Tensor:
        return tails - relations

    def compare(self, queries: Tensor, candidates: Tensor) -> Tensor:
        return self.margin - (queries - candidates).abs().sum(dim=-1)

    def compare_all(self, queries: Tensor, entities: Tensor) -> Tensor:
        return self.margin - torch.cdist(queries, entities, p=1.0)


class DistMult(Interaction):
    def __init__(self, embedding_dim: int, margin: float) -> None:
        super().__init__(embedding_dim, margin)
        self.entity_width = embedding_dim
        self.relation_width = embedding_dim

    def tail_query(self, heads: Tensor, relations: Tensor) -> Tensor:
        return heads * relations

    def head_query(self, relations: Tensor, tails: Tensor) -> Tensor:
        return tails * relations

    def compare(self, queries: Tensor, candidates: Tensor) -> Tensor:
        return (queries * candidates).sum(dim=-1)

    def compare_all(self, queries: Tensor, entities: Tensor) -> Tensor:
        return queries @ entities.T


class RotatE(Interaction):
    """Entities are complex vectors stored as [real | imaginary]; relations are d phases."""

    def __init__(self, embedding_dim: int, margin: float, compare_chunk: int = 2**20) -> None:
        super().__init__(embedding_dim, margin)
        self.entity_width = 2 * embedding_dim
        self.relation_width = embedding_dim
        self.compare_chunk = compare_chunk  # elements of each (B, n, d) CPU temporary in compare_all (~4 MiB)

    def _rotate(self, entities: Tensor, phases: Tensor) -> Tensor:
        real, imag = entities.chunk(2, dim=-1)
        cos, sin = torch.cos(phases), torch.sin(phases)
        return torch.cat([real * cos - imag * sin, real * sin + imag * cos], dim=-1)

    def tail_query(self, heads: Tensor, relations: Tensor) -> Tensor:
        return self._rotate(heads, relations)

    def head_query(self, relations: Tensor, tails: Tensor) -> Tensor:
        return self._rotate(tails, -relations)

    def compare(self, queries: Tensor, candidates: Tensor) -> Tensor:
        q_real, q_imag = queries.chunk(2, dim=-1)
        c_real, c_imag = candidates.chunk(2, dim=-1)
        modulus = torch.sqrt((q_real - c_real) ** 2 + (q_imag - c_imag) ** 2 + 1e-12)
        return self.margin - modulus.sum(dim=-1)

    def compare_all(self, queries: Tensor, entities: Tensor) -> Tensor:
        """The complex modulus has no matmul form, so the (B, n, d) differences are unavoidable.

        Without autograd they are computed in place over entity chunks: on a CPU small enough to stay in
        cache (~6x faster than one large broadcast), on a GPU large enough to keep kernels busy.
        """
        if torch.is_grad_enabled() and (queries.requires_grad or entities.requires_grad):
            return self.compare(queries.unsqueeze(1), entities.unsqueeze(0))
        q_real, q_imag = (part.unsqueeze(1) for part in queries.chunk(2, dim=-1))  # (B, 1, d)
        e_real, e_imag = entities.chunk(2, dim=-1)  # (N, d)
        budget = self.compare_chunk if queries.device.type == "cpu" else self.compare_chunk * 256
        step = max(1, budget // max(1, queries.shape[0] * self.embedding_dim))
        scores = queries.new_empty(queries.shape[0], entities.shape[0])  # (B, N)
        for start in range(0, entities.shape[0], step):
            stop = start + step
            real = (q_real - e_real[start:stop]).square_()  # (B, n, d)
            real += (q_imag - e_imag[start:stop]).square_()
            scores[:, start:stop] = self.margin - real.sqrt_().sum(dim=-1)
        return scores

    def init_relations(self, weight: Tensor) -> None:
        nn.init.uniform_(weight, -math.pi, math.pi)


INTERACTIONS: dict[str, type[Interaction]] = {"transe": TransE, "distmult": DistMult, "rotate": RotatE}


def make_interaction(name: str, embedding_dim: int, margin: float) -> Interaction:
    try:
        cls = INTERACTIONS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(INTERACTIONS)}") from None
    return cls(embedding_dim, margin)
