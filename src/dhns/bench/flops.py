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


def executed_chain_flops(generator: HierarchicalGenerator, batch: int, keep_steps: Sequence[int],
                         chain: ReverseChain) -> int:
    """Matmul FLOPs the sampler actually executes (`PreparedDenoisers`): per level, once per chain the folding of the
    last two layers into one (w x w times w x hidden) and the condition's share of the first layer, then per call
    the first matmul over [x - m_x, 3 shifts, 1] (w + 4 inputs) and the folded last layers (hidden -> w), on
    2 * batch rows (both sides); the time MLP runs on one row per call. The folding's few matrix-vector products
    are left out.

    These FLOPs at the device's measured matmul peak are the least time generation can take in this layout.
    """
    width = generator.width
    hidden = generator.hidden_multiplier * width
    time_dim = generator.denoisers[generator.levels[0]].time_dim
    rows = 2 * batch
    calls = chain_calls(generator.diffusion.num_steps, keep_steps, chain)
    per_call = 2 * rows * ((width + 4) * hidden + hidden * width) + 2 * (time_dim * width + width * width + width * hidden)
    once = 2 * width * width * hidden + 2 * rows * width * hidden
    return len(generator.levels) * (once + calls * per_call)


def generator_step_flops(generator: HierarchicalGenerator, batch: int) -> int:
    """Matmul FLOPs of one `generator_step` (forward + backward ~ 3x forward; every row has its own step)."""
    net, time_mlp = denoiser_flops_per_row(generator.width, generator.hidden_multiplier)
    return 3 * len(generator.levels) * 2 * batch * (net + time_mlp)
