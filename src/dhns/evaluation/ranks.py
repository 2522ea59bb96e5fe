"""Rank semantics for link prediction, defined once so every reported number means the same thing.

Conventions follow PyKEEN: a candidate outranks the true answer only if it scores strictly higher
(optimistic) or higher-or-equal (pessimistic); the realistic rank is their mean, which is the
expected rank when ties are broken uniformly at random. Reporting all three makes a model that
scores everything equal (e.g. a collapsed embedding) visible instead of flattering it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

TIE_POLICIES: tuple[str, ...] = ("optimistic", "realistic", "pessimistic")

DEFAULT_KS: tuple[int, ...] = (1, 3, 10)


def ranks_from_scores(
    scores: Tensor,
    true_index: Tensor,
    filter_mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """Rank the true candidate of every row against the unfiltered others, under each tie policy.

    Counting comparisons instead of sorting keeps this O(B * N) with no (B, N) index tensor and
    gives exact tie semantics independent of any sort's stability.

    Args:
        scores: (B, N) floating scores, higher is better.
        true_index: (B,) integer column of the true candidate of each row.
        filter_mask: optional (B, N) bool, True for other known-true answers to exclude. The true
            column is never excluded, even when marked, because the known set normally contains
            the very triple being ranked.

    Returns:
        ``{"optimistic", "realistic", "pessimistic"}`` -> (B,) float64 ranks (1 = best), on the
        device of ``scores``.

    Raises:
        ValueError: on bad shapes or indices, or if a true score or any unfiltered candidate score is
            NaN (a NaN compares False with everything and would silently produce a best rank).
    """
    _check_inputs(scores, true_index, filter_mask)
    num_rows = scores.shape[0]
    rows = torch.arange(num_rows, device=scores.device)  # (B,)
    true_index = true_index.to(device=scores.device, dtype=torch.long)
    true_scores = scores[rows, true_index].unsqueeze(1)  # (B, 1)

    if filter_mask is None:
        others = torch.ones_like(scores, dtype=torch.bool)  # (B, N)
    else:
        others = torch.logical_not(filter_mask.to(device=scores.device))  # (B, N), fresh: safe to write
    others[rows, true_index] = False

    _raise_on_nan(scores, true_scores, others)

    # logical_and_ in place and a uint8 view for counting avoid materialising (B, N) int64 copies,
    # which dominated CPU time in profiling.
    num_greater = _count_rows(torch.gt(scores, true_scores).logical_and_(others))  # (B,)
    num_greater_equal = _count_rows(torch.ge(scores, true_scores).logical_and_(others))  # (B,)
    optimistic = 1.0 + num_greater.to(torch.float64)
    pessimistic = 1.0 + num_greater_equal.to(torch.float64)
    return {
        "optimistic": optimistic,
        "realistic": 0.5 * (optimistic + pessimistic),
        "pessimistic": pessimistic,
    }


def count_candidates(true_index: Tensor, filter_mask: Tensor, num_marked: Tensor) -> Tensor:
    """How many entities each true answer was ranked among: the unfiltered ones, itself included.

    A random scorer's expected rank depends on this number, (c + 1) / 2, so chance-adjusted metrics
    (AMR, AMRI) need it per query; with filtering it differs from query to query.

    Args:
        true_index: (B,) integer column of the true candidate of each row.
        filter_mask: (B, N) bool, True for known answers to exclude (the true column counts as a
            candidate even when marked, as in `ranks_from_scores`).
        num_marked: (B,) number of True entries per row of ``filter_mask``. The filter index knows
            it from its postings, which saves another pass over the (B, N) mask per chunk.

    Returns:
        (B,) int64 counts in [1, N], on the device of ``filter_mask``.
    """
    rows = torch.arange(filter_mask.shape[0], device=filter_mask.device)  # (B,)
    true_index = true_index.to(device=filter_mask.device, dtype=torch.long)
    true_is_marked = filter_mask[rows, true_index].to(torch.int64)  # (B,)
    return filter_mask.shape[1] - num_marked.to(device=filter_mask.device, dtype=torch.int64) + true_is_marked


def _count_rows(flags: Tensor) -> Tensor:
    """(B, N) bool -> (B,) int64 number of True per row."""
    return flags.view(torch.uint8).sum(dim=1, dtype=torch.int64)


def _raise_on_nan(scores: Tensor, true_scores: Tensor, others: Tensor) -> None:
    """Reject NaN among the scores that take part in the ranking; NaN at filtered entries is harmless.

    A row's sum is NaN whenever the row holds a NaN, so the cheap row sums screen out clean batches;
    only suspicious rows (a NaN, or +inf and -inf together) get the exact elementwise check.
    """
    suspect = torch.isnan(scores.sum(dim=1)).nonzero().squeeze(1)  # (S,)
    if suspect.numel() == 0:
        return
    nan_rows = torch.isnan(scores[suspect]).logical_and_(others[suspect]).any(dim=1)  # (S,)
    nan_rows |= torch.isnan(true_scores[suspect]).squeeze(1)
    num_nan_rows = int(nan_rows.sum())
    if num_nan_rows:
        raise ValueError(
            f"NaN scores in {num_nan_rows} of {scores.shape[0]} rows (true or unfiltered candidates); "
            "ranks would be meaningless"
        )


def metrics_from_ranks(
    ranks: Tensor, ks: Sequence[int] = DEFAULT_KS, *, num_candidates: Tensor | None = None
) -> dict[str, float | int | None]:
    """Summarise ranks into MRR, mean rank and hits@k as plain Python numbers, ready for JSON.

    Computed in float64 on CPU so the summary does not depend on the device or on the order of a
    parallel reduction more than float64 rounding allows.

    With ``num_candidates`` (the (M,) count from `count_candidates` of each rank's query) the
    chance-adjusted mean ranks of Berrendorf et al. (2020) follow ``mean_rank``: the raw mean rank
    cannot be compared across datasets or filters, since a random scorer's depends on how many
    candidates each query had. They are computed for every tie policy given; PyKEEN defines them
    on realistic ranks only.

    Returns:
        ``{"mrr", "mean_rank", ["adjusted_arithmetic_mean_rank", "adjusted_arithmetic_mean_rank_index",]
        "hits_at_<k>" for k in ks, "count"}``. The index is None when every query had a single
        candidate (a random scorer is then perfect too, so there is nothing to adjust by).
    """
    ks = _check_ks(ks)
    if ranks.ndim != 1:
        raise ValueError(f"ranks must be 1-D, got shape {tuple(ranks.shape)}")
    if ranks.numel() == 0:
        raise ValueError("cannot compute metrics from zero ranks")
    ranks64 = ranks.detach().to(device="cpu", dtype=torch.float64)  # (M,)
    if not bool(torch.isfinite(ranks64).all()) or bool((ranks64 < 1).any()):
        raise ValueError("ranks must be finite and >= 1")
    mean_rank = float(ranks64.mean())
    metrics: dict[str, float | int | None] = {"mrr": float(ranks64.reciprocal().mean()), "mean_rank": mean_rank}
    if num_candidates is not None:
        metrics |= _adjusted_mean_ranks(mean_rank, _expected_mean_rank(num_candidates, ranks64))
    for k in ks:
        metrics[f"hits_at_{k}"] = float((ranks64 <= k).to(torch.float64).mean())
    metrics["count"] = int(ranks64.numel())
    return metrics


def _expected_mean_rank(num_candidates: Tensor, ranks64: Tensor) -> float:
    """Mean rank a uniformly random scorer is expected to get on these queries: mean of (c_i + 1) / 2."""
    if num_candidates.shape != ranks64.shape:
        raise ValueError(
            f"num_candidates must have the shape of ranks {tuple(ranks64.shape)}, got {tuple(num_candidates.shape)}"
        )
    counts = num_candidates.detach().to(device="cpu", dtype=torch.float64)  # (M,)
    if bool((counts < 1).any()) or bool((ranks64 > counts).any()):
        raise ValueError("num_candidates must be >= 1 and >= the rank of the same query")
    return 0.5 * (1.0 + float(counts.mean()))


def _adjusted_mean_ranks(mean_rank: float, expected_mean_rank: float) -> dict[str, float | None]:
    """AMR = MR / E[MR] (1 = chance, lower is better) and AMRI = 1 - (MR - 1) / (E[MR] - 1) (0 = chance, 1 = perfect)."""
    index = None if expected_mean_rank == 1.0 else 1.0 - (mean_rank - 1.0) / (expected_mean_rank - 1.0)
    return {
        "adjusted_arithmetic_mean_rank": mean_rank / expected_mean_rank,
        "adjusted_arithmetic_mean_rank_index": index,
    }


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Reject cutoffs that would silently produce misleading or colliding metric names."""
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must not be empty")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"every k must be a positive int, got {k!r}")
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks must be unique, got {ks}")
    return ks


def _check_inputs(scores: Tensor, true_index: Tensor, filter_mask: Tensor | None) -> None:
    """Fail loudly on shapes that broadcasting would otherwise accept with a wrong meaning."""
    if scores.ndim != 2:
        raise ValueError(f"scores must be (B, N), got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be floating point, got {scores.dtype}")
    num_rows, num_candidates = scores.shape
    if true_index.shape != (num_rows,):
        raise ValueError(f"true_index must have shape ({num_rows},), got {tuple(true_index.shape)}")
    if true_index.is_floating_point() or true_index.dtype == torch.bool:
        raise ValueError(f"true_index must be an integer tensor, got {true_index.dtype}")
    if num_rows and (int(true_index.min()) < 0 or int(true_index.max()) >= num_candidates):
        raise ValueError(f"true_index out of range [0, {num_candidates})")
    if filter_mask is not None:
        if filter_mask.shape != scores.shape:
            raise ValueError(
                f"filter_mask must have the shape of scores {tuple(scores.shape)}, "
                f"got {tuple(filter_mask.shape)}"
            )
        if filter_mask.dtype != torch.bool:
            raise ValueError(f"filter_mask must be bool, got {filter_mask.dtype}")
