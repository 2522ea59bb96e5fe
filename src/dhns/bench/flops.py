"""Analytic matmul FLOPs of the denoiser, its reverse chain and its training step (for achieved FLOP/s)."""

from __future__ import annotations

from typing import Sequence

from dhns.config import ReverseChain
from dhns.diffusion.generator import HierarchicalGenerator
from dhns.diffusion.schedule import chain_visits


def denoiser_flops_per_row(width: int, hidden_multiplier: int) -> tuple[int, int]:
    """Matmul FLOPs of one ConditionalDenoiser call: (per row of the net, per call of the time MLP).

    Layout (dhns.diffusion.denoiser): time MLP Linear(w, w) -> Linear(w, w) on the step's embedding, then
    Linear(3w, h) -> Linear(h, w) -> Linear(w, w) with h = hidden_multiplier * w; 2 * in * out per Linear.
    """
    hidden = hidden_multiplier * width
    net = 2 * (3 * width * hidden + hidden * width + width * width)
    time_mlp = 2 * (width * width + width * width)
    return net, time_mlp


def chain_calls(num_steps: int, keep_steps: Sequence[int], chain: ReverseChain) -> int:
    """Denoiser calls of one chain: T - min(k) for the full chain, one per jump for a strided one."""
    if chain.is_full:
        return num_steps - min(keep_steps)
    return len(chain_visits(num_steps, keep_steps, chain.stride)) - 1


def chain_flops(generator: HierarchicalGenerator, batch: int, keep_steps: Sequence[int],
                chain: ReverseChain) -> int:
    """Matmul FLOPs of `generate` on `batch` triples in the design's layer layout: every level, both sides,
    one call per step the chain takes (`chain_calls`). The time MLP is counted once per call: its input, the step, is the same for every row.

    The sampler may execute fewer (the restructured chain of `PreparedDenoisers` folds the condition term
    and the last two Linears), so FLOPs / seconds is an equivalent rate, comparable across implementations.
    """
    net, time_mlp = denoiser_flops_per_row(generator.width, generator.hidden_multiplier)
    calls = chain_calls(generator.diffusion.num_steps, keep_steps, chain)
    return len(generator.levels) * calls * (2 * batch * net + time_mlp)


def generator_step_flops(generator: HierarchicalGenerator, batch: int) -> int:
    """Matmul FLOPs of one `generator_step` (forward + backward ~ 3x forward; every row has its own step)."""
    net, time_mlp = denoiser_flops_per_row(generator.width, generator.hidden_multiplier)
    return 3 * len(generator.levels) * 2 * batch * (net + time_mlp)
