"""The sampling path: a prepared (condition-bound) denoiser and a stack of them equal the plain forward."""

from __future__ import annotations

import math

import pytest
import torch

from dhns.config import FULL_CHAIN
from dhns.diffusion.noise import ChainNoise
from dhns.diffusion import ConditionalDenoiser, GaussianDiffusion
from dhns.diffusion.denoiser import DenoiserStack

Tensor = torch.Tensor

STEPS = (0, 1, 17, 49)


def random_denoiser(width: int, seed: int, dtype: torch.dtype, random_affine: bool = True) -> ConditionalDenoiser:
    """A denoiser whose every parameter is random, LayerNorm gammas and betas included (unless not asked)."""
    torch.manual_seed(seed)
    denoiser = ConditionalDenoiser(width, time_dim=max(width, 8)).to(dtype)
    if random_affine:
        with torch.no_grad():
            for name, parameter in denoiser.named_parameters():
                if parameter.dim() == 1:  # biases, LayerNorm gammas and betas
                    parameter.copy_(torch.randn_like(parameter) + (1.0 if name.endswith("weight") else 0.0))
    return denoiser


def far_from_zero_condition(rows: int, width: int, dtype: torch.dtype, seed: int) -> Tensor:
    """Rows with a large common offset: the row mean the LayerNorm removes is not small."""
    generator = torch.Generator().manual_seed(seed)
    return 3.0 + 2.0 * torch.randn(rows, width, generator=generator, dtype=dtype)


def plain(denoiser: ConditionalDenoiser, x_t: Tensor, t: int, condition: Tensor) -> Tensor:
    with torch.no_grad():
        return denoiser(x_t, torch.full((x_t.shape[0],), t), condition)


def assert_relatively_close(actual: Tensor, expected: Tensor, tolerance: float) -> None:
    """Within `tolerance` relative to each element and to the largest magnitude (outputs cross zero)."""
    torch.testing.assert_close(actual, expected, rtol=tolerance, atol=tolerance * float(expected.abs().max()))


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("width", [1, 3, 16, 64])
@pytest.mark.parametrize("random_affine", [True, False])
def test_prepared_denoiser_equals_the_plain_forward(dtype, tolerance, width, random_affine):
    denoiser = random_denoiser(width, seed=width, dtype=dtype, random_affine=random_affine)
    condition = far_from_zero_condition(33, width, dtype, seed=1)
    x_t = torch.randn(33, width, generator=torch.Generator().manual_seed(2), dtype=dtype)
    prepared = denoiser.prepare(condition)
    for t in STEPS:
        fast = prepared(x_t, t)
        assert fast.shape == x_t.shape and fast.dtype == dtype
        assert_relatively_close(fast, plain(denoiser, x_t, t, condition), tolerance)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_denoiser_stack_equals_each_level_forward(dtype, tolerance):
    width, rows = 12, 20
    denoisers = [random_denoiser(width, seed=level, dtype=dtype) for level in range(3)]
    conditions = torch.stack([far_from_zero_condition(rows, width, dtype, seed=level) for level in range(3)])
    x_t = torch.randn(3, rows, width, generator=torch.Generator().manual_seed(9), dtype=dtype)  # (L, N, w)
    prepared = DenoiserStack(denoisers).prepare(conditions)
    for t in STEPS:
        fast = prepared(x_t, t)  # (L, N, w)
        for level, denoiser in enumerate(denoisers):
            assert_relatively_close(fast[level], plain(denoiser, x_t[level], t, conditions[level]), tolerance)


def test_prepare_reads_the_current_weights():
    denoiser = random_denoiser(5, seed=0, dtype=torch.float64)
    condition, x_t = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    before = denoiser.prepare(condition)(x_t, 3)
    with torch.no_grad():
        denoiser.net[0].weight.mul_(2.0)  # as an optimizer step would
    after = denoiser.prepare(condition)(x_t, 3)
    assert not torch.allclose(before, after)
    assert_relatively_close(after, plain(denoiser, x_t, 3, condition), 1e-12)


def test_stacked_chain_equals_per_level_plain_chains_with_the_documented_noise_order():
    # Per-level chains with the plain forward, fed the random numbers in the order iterate_chain documents:
    # x_T as one (L, N, w) draw, then one (L, N, w) draw per step t >= 1.
    diffusion = GaussianDiffusion(num_steps=10)
    width, rows, dtype = 6, 8, torch.float64
    denoisers = [random_denoiser(width, seed=level, dtype=dtype) for level in range(2)]
    conditions = torch.stack([far_from_zero_condition(rows, width, dtype, seed=level) for level in range(2)])
    chain = diffusion.sample_chain(DenoiserStack(denoisers), conditions, [0, 3, 10], torch.Generator().manual_seed(5), chain=FULL_CHAIN)

    replay = ChainNoise(torch.Generator().manual_seed(5), torch.device("cpu"))  # the chain's source, keyed alike
    x = replay.normal(conditions)  # (L, N, w)
    expected = {10: x}
    for t in range(9, -1, -1):
        with torch.no_grad():  # a plain callable: p_mean calls it with a (N,) step tensor, as in training
            means = torch.stack([
                diffusion.p_mean(lambda x_t, steps, c, d=denoiser: d(x_t, steps, c), x[level], t, conditions[level])
                for level, denoiser in enumerate(denoisers)
            ])
        if t > 0:
            # sigma_t^2 = beta_t (1 - abar_{t-1}) / (1 - abar_t), the posterior variance, in float64 here
            betas = torch.linspace(1e-4, 0.02, 10, dtype=torch.float64)
            abar = torch.cumprod(1 - betas, dim=0)
            sigma = math.sqrt(float(betas[t] * (1 - abar[t - 1]) / (1 - abar[t])))
            means = means + sigma * replay.normal(conditions)
        x = expected[t] = means
    assert set(chain) == {0, 3, 10}
    for k, state in chain.items():
        assert_relatively_close(state, expected[k], 1e-10)


def test_reverse_step_takes_the_prepared_path_only_without_autograd():
    # Under autograd p_mean calls the plain forward (differentiable); without, the prepared path. Same values.
    diffusion = GaussianDiffusion(num_steps=10)
    stack = DenoiserStack([random_denoiser(5, seed=level, dtype=torch.float64) for level in range(2)])
    conditions = torch.stack([far_from_zero_condition(7, 5, torch.float64, seed=level) for level in range(2)])
    x_t = torch.randn(2, 7, 5, dtype=torch.float64)
    differentiable = diffusion.p_mean(stack, x_t, 4, conditions)  # (L, N, w)
    differentiable.sum().backward()
    assert all(parameter.grad is not None for denoiser in stack.denoisers for parameter in denoiser.parameters())
    with torch.no_grad():
        prepared = diffusion.p_mean(stack, x_t, 4, conditions)
    assert not prepared.requires_grad
    assert_relatively_close(prepared, differentiable.detach(), 1e-12)


def test_prepared_denoiser_runs_under_autocast():
    # Mixed precision (as on CUDA later): bf16 rounding, so only a loose agreement with the float32 forward.
    denoiser = random_denoiser(16, seed=0, dtype=torch.float32)
    condition, x_t = far_from_zero_condition(9, 16, torch.float32, seed=1), torch.randn(9, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = denoiser.prepare(condition)(x_t, 11)
    assert_relatively_close(fast.float(), plain(denoiser, x_t, 11, condition), 5e-2)


def test_prepared_path_runs_without_autograd_and_leaves_grad_mode_alone():
    denoiser = ConditionalDenoiser(4)
    condition = torch.randn(3, 4, requires_grad=True)
    out = denoiser.prepare(condition)(torch.randn(3, 4, requires_grad=True), 5)
    assert not out.requires_grad
    assert torch.is_grad_enabled()


def test_stack_rejects_mismatched_denoisers_and_shapes():
    with pytest.raises(ValueError, match="at least one"):
        DenoiserStack([])
    with pytest.raises(ValueError, match="share"):
        DenoiserStack([ConditionalDenoiser(4), ConditionalDenoiser(5)])
    with pytest.raises(ValueError, match="share"):
        DenoiserStack([ConditionalDenoiser(4), ConditionalDenoiser(4, hidden_multiplier=2)])
    stack = DenoiserStack([ConditionalDenoiser(4), ConditionalDenoiser(4)])
    assert len(stack) == 2
    with pytest.raises(ValueError, match="condition"):
        stack.prepare(torch.zeros(3, 6, 4))  # three levels of conditions for two denoisers
    with pytest.raises(ValueError, match="condition"):
        stack.prepare(torch.zeros(2, 6, 5))
    with pytest.raises(ValueError, match="x_t"):
        stack.prepare(torch.zeros(2, 6, 4))(torch.zeros(2, 5, 4), 0)
    with pytest.raises(ValueError, match="condition"):
        ConditionalDenoiser(4).prepare(torch.zeros(2, 6, 4))
    with pytest.raises(ValueError, match="x_t"):
        stack(torch.zeros(6, 4), torch.zeros(6, dtype=torch.long), torch.zeros(6, 4))
