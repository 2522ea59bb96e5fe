"""KGC scoring functions written as `compare(query, candidate)`.

Every scorer here factors into a query built from the known side of a triple and a comparison with the
candidate entity: TransE scores `gamma - ||(h + r) - t||_1` for tails and `gamma - ||h - (t - r)||_1` for
heads; DistMult `<h * r, t>` and `<h, t * r>`; RotatE `gamma - sum |h o r - t|` and, because |r| = 1,
`gamma - sum |h - t o conj(r)|`. The query is exactly the diffusion condition C(e, r) of the design
notes, so the DiffHEG stage reuses it, and ranking all entities becomes one batched comparison.

Training scores B queries against k sampled candidates each (`compare_gathered`). For the two distance
scorers on the CPU this never materialises the (B, k, w) candidates, their differences or their
gradients: the compiled loops of `dhns.native` score each pair in one pass (fp32), and
`GatheredDistance` does it in cache-sized chunks of PyTorch ops where those are not available (bf16, no
C compiler, `DHNS_NATIVE=0`). Ranking against every entity (`compare_all`) uses the same loops without
autograd: PyTorch's `cdist(p=1)` and the chunked complex modulus are 5-8x slower.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from dhns import native

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

    def compare_gathered(self, queries: Tensor, table: Tensor, index: Tensor) -> Tensor:
        """(B, w) queries against their own candidates `table[index]` ((U, w) table, (B, k) ids) -> (B, k)."""
        return self.compare(queries.unsqueeze(1), table[index])

    def init_relations(self, weight: Tensor) -> None:
        nn.init.xavier_uniform_(weight)


class DistanceInteraction(Interaction):
    """A scorer `margin - distance(query, candidate)` whose distance is a sum over the entity width.

    Subclasses give the distance and its gradient as functions of the difference `candidate - query`, so
    `compare_gathered` can score sampled candidates chunk by chunk (`GatheredDistance`), and name the
    compiled loop that computes the same (`native_kind`, `native_epsilon`).
    """

    native_kind: str  # dhns.native.KINDS
    native_epsilon = 0.0  # added inside each term of the training distance (RotatE's square root)

    def __init__(self, embedding_dim: int, margin: float, gather_chunk: int = 2**18) -> None:
        super().__init__(embedding_dim, margin)
        # elements per thread of each (rows, k, w) CPU temporary in compare_gathered (1 MiB of fp32): every
        # elementwise op splits a chunk over the threads, so each core's share stays in its L2 cache
        self.gather_chunk = gather_chunk

    def difference_distance_(self, differences: Tensor) -> Tensor:
        """(..., w) differences `candidate - query`, overwritten -> (...) distances."""
        raise NotImplementedError

    def difference_gradient_(self, differences: Tensor, grad_distances: Tensor) -> Tensor:
        """d(sum grad * distance)/d(differences): (..., w) differences, overwritten, and (...) grads -> (..., w)."""
        raise NotImplementedError

    def compare_gathered(self, queries: Tensor, table: Tensor, index: Tensor) -> Tensor:
        """On the CPU without the (B, k, w) tensors; elsewhere (untimed there) the plain gather and compare."""
        if table.device.type != "cpu":
            return super().compare_gathered(queries, table, index)
        dtype = torch.promote_types(queries.dtype, table.dtype)  # the dtype compare would compute in
        queries = queries.to(dtype)
        if native.usable(queries, table):
            distances = NativeGatheredDistance.apply(self.native_kind, self.native_epsilon, queries, table, index)
            return self.margin - distances
        budget = self.gather_chunk * torch.get_num_threads()
        rows = max(1, budget // max(1, index.shape[-1] * table.shape[-1]))
        distances = GatheredDistance.apply(self, queries, table.to(dtype), index, rows)
        return self.margin - distances


class GatheredDistance(torch.autograd.Function):
    """distance(queries[b], table[index[b, j]]) -> (B, k), for a `DistanceInteraction`, in row chunks.

    The plain form gathers (B, k, w) candidates and builds the (B, k, w) difference, its absolute value or
    modulus, and in backward as many gradients again, then scatters the candidates' gradient back into the
    table (`index_put_`, a third of a multimodal pretrain step). Here each chunk of `rows` queries is
    gathered, compared and dropped while it is still in cache; backward recomputes the chunk's difference
    and adds its gradient straight into the (U, w) table gradient with `index_add_` (which accumulates
    repeated ids). Nothing of size (B, k, w) is kept between forward and backward.
    """

    @staticmethod
    def forward(ctx, interaction: DistanceInteraction, queries: Tensor, table: Tensor, index: Tensor,
                rows: int) -> Tensor:
        ctx.interaction, ctx.rows = interaction, rows
        ctx.save_for_backward(queries, table, index)
        distances = queries.new_empty(index.shape)  # (B, k)
        for start, chunk, differences in _chunk_differences(queries, table, index, rows):
            distances[start : start + chunk] = interaction.difference_distance_(differences)
        return distances

    @staticmethod
    @once_differentiable  # nothing here needs a second derivative
    def backward(ctx, grad_distances: Tensor):
        queries, table, index = ctx.saved_tensors
        want_queries, want_table = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        grad_queries = torch.empty_like(queries) if want_queries else None
        grad_table = torch.zeros_like(table) if want_table else None
        if want_queries or want_table:
            for start, chunk, differences in _chunk_differences(queries, table, index, ctx.rows):
                stop = start + chunk
                grad_differences = ctx.interaction.difference_gradient_(differences, grad_distances[start:stop])
                if want_queries:  # differences are candidate - query: the query's gradient is minus their sum
                    torch.sum(grad_differences, dim=1, out=grad_queries[start:stop]).neg_()
                if want_table:
                    grad_table.index_add_(0, index[start:stop].reshape(-1), grad_differences.flatten(0, 1))
        return None, grad_queries, grad_table, None, None


class NativeGatheredDistance(torch.autograd.Function):
    """`GatheredDistance` through the compiled loops: forward reads each candidate row once and writes one
    distance; backward reads it twice more (query gradients, then table gradients) and keeps nothing."""

    @staticmethod
    def forward(ctx, kind: str, epsilon: float, queries: Tensor, table: Tensor, index: Tensor) -> Tensor:
        ctx.kind, ctx.epsilon = kind, epsilon
        ctx.save_for_backward(queries, table, index)
        return native.gathered_distance(kind, queries, table, index, epsilon)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_distances: Tensor):
        queries, table, index = ctx.saved_tensors
        want_queries, want_table = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        grad_queries = grad_table = None
        if want_queries or want_table:
            grad_queries, grad_table = native.gathered_distance_backward(
                ctx.kind, queries, table, index, grad_distances, ctx.epsilon, want_queries, want_table)
        return None, None, grad_queries, grad_table, None


def _needs_autograd(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _chunk_differences(queries: Tensor, table: Tensor, index: Tensor, rows: int) -> Iterator[tuple[int, int, Tensor]]:
    """(start, rows in chunk, (rows, k, w) `table[index] - queries` of the chunk), a fresh tensor each time."""
    for start in range(0, index.shape[0], rows):
        ids = index[start : start + rows]
        gathered = table.index_select(0, ids.reshape(-1)).view(*ids.shape, table.shape[-1])
        yield start, ids.shape[0], gathered.sub_(queries[start : start + rows].unsqueeze(1))


class TransE(DistanceInteraction):
    native_kind = "l1"

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

    def difference_distance_(self, differences: Tensor) -> Tensor:
        return differences.abs_().sum(dim=-1)

    def difference_gradient_(self, differences: Tensor, grad_distances: Tensor) -> Tensor:
        return differences.sign_().mul_(grad_distances.unsqueeze(-1))

    def compare_all(self, queries: Tensor, entities: Tensor) -> Tensor:
        if not _needs_autograd(queries, entities) and native.usable(queries, entities):
            return self.margin - native.all_distance(self.native_kind, queries, entities)
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


class RotatE(DistanceInteraction):
    """Entities are complex vectors stored as [real | imaginary]; relations are d phases."""

    modulus_epsilon = 1e-12  # inside the square root: keeps the gradient finite where a difference is 0
    native_kind, native_epsilon = "modulus", modulus_epsilon

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
        modulus = torch.sqrt((q_real - c_real) ** 2 + (q_imag - c_imag) ** 2 + self.modulus_epsilon)
        return self.margin - modulus.sum(dim=-1)

    def _modulus(self, differences: Tensor) -> Tensor:
        """(..., 2d) complex differences -> (..., d) moduli (a fresh tensor; the input is left as it is)."""
        real, imag = differences.chunk(2, dim=-1)
        return torch.mul(real, real).addcmul_(imag, imag).add_(self.modulus_epsilon).sqrt_()

    def difference_distance_(self, differences: Tensor) -> Tensor:
        return self._modulus(differences).sum(dim=-1)

    def difference_gradient_(self, differences: Tensor, grad_distances: Tensor) -> Tensor:
        """d|z|/dz = z / |z| for the real and the imaginary part alike."""
        scale = torch.reciprocal(self._modulus(differences)).mul_(grad_distances.unsqueeze(-1))  # (..., d)
        return differences.view(*scale.shape[:-1], 2, -1).mul_(scale.unsqueeze(-2)).flatten(-2)

    def compare_all(self, queries: Tensor, entities: Tensor) -> Tensor:
        """The complex modulus has no matmul form, so the (B, n, d) differences are unavoidable.

        Without autograd they are computed in place over entity chunks: on a CPU small enough to stay in
        cache (~6x faster than one large broadcast), on a GPU large enough to keep kernels busy.
        """
        if _needs_autograd(queries, entities):
            return self.compare(queries.unsqueeze(1), entities.unsqueeze(0))
        if native.usable(queries, entities):
            return self.margin - native.all_distance(self.native_kind, queries, entities)  # no epsilon
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
