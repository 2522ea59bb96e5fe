"""The DDPM process: schedule values, forward marginals, posterior identities, chain conventions."""

from __future__ import annotations

import math

import pytest
import torch

from configs import train_config
from dhns.config import FULL_CHAIN
from dhns.config import ReverseChain
from dhns.diffusion.noise import ChainNoise
from dhns.diffusion import ConditionalDenoiser, GaussianDiffusion
from dhns.diffusion.schedule import chain_visits

Tensor = torch.Tensor


class OracleDenoiser:
    """Returns the exact noise that turns x0 into x_t at step t, as a perfect network would."""

    def __init__(self, diffusion: GaussianDiffusion, x0: Tensor) -> None:
        self.diffusion = diffusion
        self.x0 = x0

    def __call__(self, x_t: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        abar = self.diffusion.alphas_cumprod[t].unsqueeze(-1).double()  # (B, 1)
        noise = (x_t.double() - abar.sqrt() * self.x0.double()) / (1.0 - abar).sqrt()
        return noise.to(x_t.dtype)


class RecordingZeroDenoiser:
    """Predicts zero noise and keeps what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[Tensor, Tensor, Tensor]] = []

    def __call__(self, x_t: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        self.calls.append((x_t, t, condition))
        return torch.zeros_like(x_t)


def forward_kernel_chain(
    diffusion: GaussianDiffusion, x0: Tensor, last_step: int, generator: torch.Generator
) -> Tensor:
    """x at `last_step` by applying q(x_s | x_{s-1}) = N(sqrt(1 - beta_s) x_{s-1}, beta_s I) for s = 0..last_step."""
    x = x0.double()
    for s in range(last_step + 1):
        beta = diffusion.betas[s].double()
        x = (1.0 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return x


# ----- the schedule ---------------------------------------------------------------------------------


def test_buffers_match_hand_computed_values_for_four_steps():
    diffusion = GaussianDiffusion(num_steps=4, beta_start=0.01, beta_end=0.04)
    betas = [0.01, 0.02, 0.03, 0.04]
    alphas_cumprod = [0.99, 0.99 * 0.98, 0.99 * 0.98 * 0.97, 0.99 * 0.98 * 0.97 * 0.96]
    previous = [1.0] + alphas_cumprod[:3]
    posterior_variance = [b * (1 - p) / (1 - a) for b, p, a in zip(betas, previous, alphas_cumprod)]
    expected = {
        "betas": betas,
        "alphas": [0.99, 0.98, 0.97, 0.96],
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": previous,
        "sqrt_alphas_cumprod": [math.sqrt(a) for a in alphas_cumprod],
        "sqrt_one_minus_alphas_cumprod": [math.sqrt(1 - a) for a in alphas_cumprod],
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": [math.log(v) for v in [posterior_variance[1]] + posterior_variance[1:]],
    }
    assert posterior_variance[0] == 0.0  # nothing is left to add at the last reverse step
    for name, values in expected.items():
        buffer = getattr(diffusion, name)
        assert buffer.dtype == torch.float32, name
        expected_values = torch.tensor(values, dtype=torch.float64)
        torch.testing.assert_close(buffer.double(), expected_values, rtol=1e-6, atol=1e-9, msg=name)


def test_defaults_are_the_reference_schedule():
    diffusion = GaussianDiffusion()
    assert diffusion.betas.shape == (50,)
    assert diffusion.betas[0].item() == pytest.approx(1e-4)
    assert diffusion.betas[-1].item() == pytest.approx(0.02)
    # The reference's short schedule never reaches pure noise: abar_{T-1} = prod(1 - beta) is about 0.6.
    final = math.prod(1 - (1e-4 + i * (0.02 - 1e-4) / 49) for i in range(50))
    assert diffusion.alphas_cumprod[-1].item() == pytest.approx(final, rel=1e-5)
    assert 0.55 < final < 0.65


def test_schedule_buffers_follow_the_module_and_stay_out_of_checkpoints():
    diffusion = GaussianDiffusion(num_steps=5)
    moved = diffusion.to("meta")
    assert all(buffer.device.type == "meta" for buffer in moved.buffers())
    assert "betas" in dict(GaussianDiffusion(num_steps=5).named_buffers())
    assert GaussianDiffusion(num_steps=5).state_dict() == {}


def test_single_step_schedule_is_valid():
    diffusion = GaussianDiffusion(num_steps=1, beta_start=0.1, beta_end=0.1)
    assert torch.isfinite(diffusion.posterior_log_variance_clipped).all()
    x0 = torch.randn(3, 2)
    out = diffusion.sample_chain(OracleDenoiser(diffusion, x0), torch.zeros(3, 2), keep_steps=[0, 1], chain=FULL_CHAIN)
    torch.testing.assert_close(out[0], x0, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_steps": 0},
        {"num_steps": 2.5},
        {"beta_start": 0.0},
        {"beta_start": -1e-4},
        {"beta_start": 0.03, "beta_end": 0.02},
        {"beta_end": 1.0},
    ],
)
def test_rejects_bad_schedule_arguments(kwargs):
    with pytest.raises(ValueError):
        GaussianDiffusion(**kwargs)


# ----- forward process ------------------------------------------------------------------------------


def test_q_sample_is_the_closed_form():
    diffusion = GaussianDiffusion(num_steps=4, beta_start=0.01, beta_end=0.04)
    alphas_cumprod = torch.tensor([0.99, 0.99 * 0.98, 0.99 * 0.98 * 0.97, 0.99 * 0.98 * 0.97 * 0.96])
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, generator=generator)
    noise = torch.randn(4, 3, generator=generator)
    t = torch.tensor([3, 0, 2, 1])
    expected = alphas_cumprod[t, None].sqrt() * x0 + (1 - alphas_cumprod[t, None]).sqrt() * noise
    torch.testing.assert_close(diffusion.q_sample(x0, t, noise), expected, rtol=1e-6, atol=1e-7)


def test_q_sample_broadcasts_over_trailing_dimensions():
    diffusion = GaussianDiffusion(num_steps=10)
    x0, noise = torch.ones(2, 3, 4), torch.zeros(2, 3, 4)
    out = diffusion.q_sample(x0, torch.tensor([0, 9]), noise)  # (2, 3, 4)
    torch.testing.assert_close(out[0], diffusion.sqrt_alphas_cumprod[0].expand(3, 4))
    torch.testing.assert_close(out[1], diffusion.sqrt_alphas_cumprod[9].expand(3, 4))


@pytest.mark.parametrize("step", [0, 9, 49])
def test_iterated_one_step_kernel_has_the_closed_form_marginal(step):
    # Step t is t + 1 kernel applications: an off-by-one changes the variance by >= 20% at these steps.
    diffusion = GaussianDiffusion(num_steps=50)
    generator = torch.Generator().manual_seed(step)
    x0 = torch.full((20_000, 1), 3.0)
    x = forward_kernel_chain(diffusion, x0, step, generator)
    abar = diffusion.alphas_cumprod[step].double()
    assert x.mean().item() == pytest.approx(3.0 * abar.sqrt().item(), abs=4 * math.sqrt((1 - abar.item()) / 20_000))
    assert x.var().item() == pytest.approx(1 - abar.item(), rel=0.05)


# ----- posterior and reverse step -------------------------------------------------------------------


@pytest.mark.parametrize("step", [1, 10, 49])
def test_posterior_matches_gaussian_conditioning(step):
    # Condition the joint of (x_{t-1}, x_t) given x0 directly: x_{t-1} ~ N(m, v), x_t = sqrt(a) x_{t-1} + sqrt(b) z.
    diffusion = GaussianDiffusion(num_steps=50)
    betas = diffusion.betas.double()
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    a, b, abar_prev, abar = 1 - betas[step], betas[step], alphas_cumprod[step - 1], alphas_cumprod[step]
    generator = torch.Generator().manual_seed(step)
    x0 = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    x_t = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    prior_mean, prior_var = abar_prev.sqrt() * x0, 1 - abar_prev
    gain = a.sqrt() * prior_var / (1 - abar)  # cov(x_{t-1}, x_t) / var(x_t)
    expected_mean = prior_mean + gain * (x_t - a.sqrt() * prior_mean)
    expected_var = prior_var - gain * a.sqrt() * prior_var

    t = torch.full((6,), step)
    torch.testing.assert_close(diffusion.q_posterior_mean(x0, x_t, t), expected_mean, rtol=1e-5, atol=1e-6)
    assert diffusion.posterior_variance[step].item() == pytest.approx(expected_var.item(), rel=1e-5)


@pytest.mark.parametrize("step", [0, 1, 25, 49])
def test_reverse_mean_with_the_true_noise_is_the_posterior_mean(step):
    diffusion = GaussianDiffusion(num_steps=50)
    generator = torch.Generator().manual_seed(step)
    x0 = torch.randn(8, 4, generator=generator, dtype=torch.float64)
    noise = torch.randn(8, 4, generator=generator, dtype=torch.float64)
    t = torch.full((8,), step)
    x_t = diffusion.q_sample(x0, t, noise)
    mean = diffusion.p_mean(lambda x, s, c: noise, x_t, step, torch.zeros_like(x0))
    torch.testing.assert_close(mean, diffusion.q_posterior_mean(x0, x_t, t), rtol=1e-5, atol=1e-6)
    if step == 0:
        torch.testing.assert_close(mean, x0, rtol=1e-5, atol=1e-6)


def test_p_sample_adds_posterior_noise_except_at_step_zero():
    diffusion = GaussianDiffusion(num_steps=10)
    x_t, condition = torch.randn(5, 3), torch.randn(5, 3)
    denoiser = ConditionalDenoiser(3)
    for step in (9, 4, 1):
        mean = diffusion.p_mean(denoiser, x_t, step, condition)
        z = ChainNoise(torch.Generator().manual_seed(7), torch.device("cpu")).normal(x_t)  # p_sample's one draw
        sigma = diffusion.posterior_variance[step].sqrt()
        out = diffusion.p_sample(denoiser, x_t, step, condition, torch.Generator().manual_seed(7))
        torch.testing.assert_close(out, mean + sigma * z)
    first = diffusion.p_sample(denoiser, x_t, 0, condition, torch.Generator().manual_seed(1))
    second = diffusion.p_sample(denoiser, x_t, 0, condition, torch.Generator().manual_seed(2))
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(first, diffusion.p_mean(denoiser, x_t, 0, condition))
    with pytest.raises(ValueError):
        diffusion.p_sample(denoiser, x_t, 10, condition)


# ----- the reverse chain ----------------------------------------------------------------------------


def test_oracle_chain_from_a_forward_sample_ends_at_x0():
    diffusion = GaussianDiffusion(num_steps=50)
    generator = torch.Generator().manual_seed(0)
    x0 = 2 * torch.randn(64, 3, generator=generator)
    x_start = diffusion.q_sample(x0, torch.full((64,), 49), torch.randn(64, 3, generator=generator))
    out = diffusion.sample_chain(OracleDenoiser(diffusion, x0), torch.zeros(64, 3), [0], generator, x_start=x_start, chain=FULL_CHAIN)
    torch.testing.assert_close(out[0], x0, rtol=0, atol=1e-4)
    assert (x_start - x0).abs().mean() > 0.3  # the chain did real work


def test_oracle_chain_states_have_forward_marginals_so_k_counts_remaining_steps():
    # With the exact x0, each ancestral step draws from q(x_{t-1} | x_t, x0), so the state with k steps left
    # must be distributed as q_sample at level k - 1. Level k instead would put the mean at k = 25 about
    # 10 standard errors away, and the variance at k = 1 off by a factor of 6.
    diffusion = GaussianDiffusion(num_steps=50)
    generator = torch.Generator().manual_seed(3)
    rows = 20_000
    x0 = torch.full((rows, 1), 5.0)
    x_start = diffusion.q_sample(x0, torch.full((rows,), 49), torch.randn(rows, 1, generator=generator))
    out = diffusion.sample_chain(OracleDenoiser(diffusion, x0), torch.zeros(rows, 1), [50, 25, 1], generator, x_start, chain=FULL_CHAIN)
    torch.testing.assert_close(out[50], x_start, rtol=0, atol=0)
    for k in (25, 1):
        abar = diffusion.alphas_cumprod[k - 1].item()
        assert out[k].mean().item() == pytest.approx(5.0 * math.sqrt(abar), abs=3 * math.sqrt((1 - abar) / rows))
        assert out[k].var().item() == pytest.approx(1 - abar, rel=0.04)


def test_sample_chain_returns_exactly_the_requested_steps_repeatably():
    diffusion = GaussianDiffusion(num_steps=10)
    torch.manual_seed(0)
    denoiser, condition = ConditionalDenoiser(4), torch.randn(6, 4)
    first = diffusion.sample_chain(denoiser, condition, [0, 5, 10, 5], torch.Generator().manual_seed(3), chain=FULL_CHAIN)
    second = diffusion.sample_chain(denoiser, condition, [10, 0, 5], torch.Generator().manual_seed(3), chain=FULL_CHAIN)
    other = diffusion.sample_chain(denoiser, condition, [0, 5, 10], torch.Generator().manual_seed(4), chain=FULL_CHAIN)
    assert set(first) == {0, 5, 10}
    for k in first:
        assert first[k].shape == condition.shape
        torch.testing.assert_close(first[k], second[k], rtol=0, atol=0)
        assert not torch.allclose(first[k], other[k])
    assert not torch.allclose(first[0], first[5])


def test_sample_chain_agrees_with_iterate_chain_and_a_manual_loop():
    diffusion = GaussianDiffusion(num_steps=6)
    torch.manual_seed(0)
    denoiser, condition = ConditionalDenoiser(3), torch.randn(4, 3)
    states = list(diffusion.iterate_chain(denoiser, condition, torch.Generator().manual_seed(5)))
    assert [k for k, _ in states] == [6, 5, 4, 3, 2, 1, 0]
    draws = ChainNoise(torch.Generator().manual_seed(5), torch.device("cpu"))  # one source, draws in chain order
    x = draws.normal(condition)
    manual = {6: x}
    with torch.no_grad():
        for t in range(5, -1, -1):
            x = diffusion.p_mean(denoiser, x, t, condition)
            if t > 0:
                x = math.exp(0.5 * float(diffusion.posterior_log_variance_clipped[t])) * draws.normal(x) + x
            manual[t] = x
    chain = diffusion.sample_chain(denoiser, condition, [1, 3], torch.Generator().manual_seed(5), chain=FULL_CHAIN)
    for k, state in states:
        torch.testing.assert_close(state, manual[k], rtol=1e-6, atol=1e-7)
    for k in (1, 3):
        torch.testing.assert_close(chain[k], manual[k], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("keep_steps", [[-1], [11], [0, 11], [2.0], [True], []])
def test_sample_chain_rejects_bad_steps(keep_steps):
    diffusion = GaussianDiffusion(num_steps=10)
    with pytest.raises(ValueError):
        diffusion.sample_chain(ConditionalDenoiser(2), torch.zeros(3, 2), keep_steps, chain=FULL_CHAIN)


def test_sample_chain_rejects_a_start_of_the_wrong_shape():
    diffusion = GaussianDiffusion(num_steps=10)
    with pytest.raises(ValueError):
        diffusion.sample_chain(ConditionalDenoiser(2), torch.zeros(3, 2), [0], x_start=torch.zeros(4, 2), chain=FULL_CHAIN)


def test_chain_outputs_are_detached_and_grad_mode_is_left_alone():
    diffusion = GaussianDiffusion(num_steps=5)
    denoiser = ConditionalDenoiser(3)
    condition = torch.randn(4, 3, requires_grad=True)
    x_start = torch.randn(4, 3, requires_grad=True)
    out = diffusion.sample_chain(denoiser, condition, [0, 2, 5], x_start=x_start, chain=FULL_CHAIN)
    assert not any(state.requires_grad for state in out.values())
    chain = diffusion.iterate_chain(denoiser, condition)
    next(chain)
    next(chain)
    assert torch.is_grad_enabled()  # a suspended chain must not leak no_grad into the caller
    assert (condition * 2).requires_grad


# ----- training loss --------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_type", ["l1", "l2"])
def test_training_loss_of_a_zero_prediction_is_the_noise_norm(loss_type):
    diffusion = GaussianDiffusion(num_steps=8)
    x0, condition = torch.randn(16, 3), torch.randn(16, 3)
    denoiser = RecordingZeroDenoiser()
    generator = torch.Generator().manual_seed(9)
    loss = diffusion.training_loss(denoiser, x0, condition, loss_type=loss_type, generator=generator)
    replay = torch.Generator().manual_seed(9)
    t = torch.randint(0, 8, (16,), generator=replay)
    noise = torch.randn(16, 3, generator=replay)
    expected = noise.abs().mean() if loss_type == "l1" else noise.square().mean()
    torch.testing.assert_close(loss, expected)
    assert loss.dim() == 0
    (x_t, seen_t, seen_condition), = denoiser.calls
    torch.testing.assert_close(seen_t, t, rtol=0, atol=0)
    torch.testing.assert_close(x_t, diffusion.q_sample(x0, t, noise))
    assert seen_condition is condition


def test_training_loss_draws_every_step_uniformly():
    diffusion = GaussianDiffusion(num_steps=4)
    denoiser = RecordingZeroDenoiser()
    zeros = torch.zeros(8_000, 1)
    diffusion.training_loss(denoiser, zeros, zeros, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(denoiser.calls[0][1], minlength=4)
    assert counts.shape == (4,)
    assert ((counts - 2_000).abs() < 200).all()


def test_training_loss_rejects_unknown_types_by_listing_the_valid_ones():
    diffusion = GaussianDiffusion(num_steps=4)
    with pytest.raises(ValueError, match="l1, l2"):
        diffusion.training_loss(RecordingZeroDenoiser(), torch.zeros(2, 2), torch.zeros(2, 2), loss_type="huber")


def test_training_loss_gradients_reach_every_denoiser_parameter():
    diffusion = GaussianDiffusion(num_steps=10)
    denoiser = ConditionalDenoiser(4)
    diffusion.training_loss(denoiser, torch.randn(32, 4), torch.randn(32, 4), loss_type="l2").backward()
    for name, parameter in denoiser.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert all(not buffer.requires_grad for buffer in diffusion.buffers())


# ----- the strided (DDIM-style) chain ---------------------------------------------------------------


def test_chain_visits_every_kept_step_and_no_jump_exceeds_the_stride():
    assert chain_visits(50, [5, 6, 12, 25], 0) == [50, 25, 12, 6, 5]
    assert chain_visits(50, [6, 25, 12, 5], 10) == [50, 40, 30, 25, 15, 12, 6, 5]
    assert chain_visits(50, [0, 25], 1) == list(range(50, -1, -1))
    assert chain_visits(10, [10, 3], 0) == [10, 3]


def test_one_strided_jump_matches_a_hand_computation_of_the_ddim_update():
    # T = 4, betas 0.1, 0.2, 0.3, 0.4; jump from k = 4 (timestep 3) to j = 2 (timestep 1) with eta = 0.5.
    diffusion = GaussianDiffusion(num_steps=4, beta_start=0.1, beta_end=0.4)
    abar = [0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.7, 0.9 * 0.8 * 0.7 * 0.6]
    abar_k, abar_j, eta = abar[3], abar[1], 0.5
    x = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    eps = torch.tensor([[0.3, 0.1], [-0.7, 0.2]])
    seen = []

    def denoiser(x_t: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        seen.append(sorted(set(t.tolist())))
        return eps

    out = dict(diffusion.iterate_strided_chain(denoiser, torch.zeros(2, 2), [4, 2], eta,
                                               torch.Generator().manual_seed(7), x_start=x))
    z = ChainNoise(torch.Generator().manual_seed(7), torch.device("cpu")).normal(x)  # x_start given: the jump's is the first draw
    x0_hat = [[(x[r][c].item() - math.sqrt(1 - abar_k) * eps[r][c].item()) / math.sqrt(abar_k) for c in range(2)]
              for r in range(2)]
    sigma = eta * math.sqrt((1 - abar_j) / (1 - abar_k)) * math.sqrt(1 - abar_k / abar_j)
    expected = torch.tensor([[math.sqrt(abar_j) * x0_hat[r][c] + math.sqrt(1 - abar_j - sigma ** 2) * eps[r][c].item()
                              + sigma * z[r][c].item() for c in range(2)] for r in range(2)])
    torch.testing.assert_close(out[2], expected, rtol=0, atol=1e-6)
    assert seen == [[3]]  # the state with 4 steps left is denoised at timestep 3


def test_strided_update_at_stride_one_and_eta_one_is_the_ddpm_step():
    # The DDIM jump with DDPM's variance between adjacent steps has the DDPM posterior's mean and variance,
    # so with the same random numbers it retraces the full chain (up to float rounding).
    diffusion = GaussianDiffusion(num_steps=50)
    torch.manual_seed(0)
    denoiser = ConditionalDenoiser(3, hidden_multiplier=2).eval()
    condition = torch.randn(16, 3)
    full = dict(diffusion.iterate_chain(denoiser, condition, torch.Generator().manual_seed(2)))
    strided = dict(diffusion.iterate_strided_chain(denoiser, condition, list(range(50, -1, -1)), 1.0,
                                                   torch.Generator().manual_seed(2)))
    assert list(full) == list(strided)
    for k in full:
        torch.testing.assert_close(strided[k], full[k], rtol=0, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_oracle_strided_chain_keeps_the_forward_marginals_at_every_kept_step(eta: float):
    # DDIM's family shares DDPM's marginals q(x_t | x0) for every eta, so with the exact x0 the kept states
    # must sit at the same noise levels as the full chain's, however few calls reach them.
    diffusion = GaussianDiffusion(num_steps=50)
    generator = torch.Generator().manual_seed(3)
    rows = 20_000
    x0 = torch.full((rows, 1), 5.0)
    x_start = diffusion.q_sample(x0, torch.full((rows,), 49), torch.randn(rows, 1, generator=generator))
    out = diffusion.sample_chain(OracleDenoiser(diffusion, x0), torch.zeros(rows, 1), [25, 12, 5, 0], generator,
                                 x_start, chain=ReverseChain(stride=0, eta=eta))
    for k in (25, 12, 5):
        abar = diffusion.alphas_cumprod[k - 1].item()
        assert out[k].mean().item() == pytest.approx(5.0 * math.sqrt(abar), abs=4 * math.sqrt((1 - abar) / rows))
        assert out[k].var().item() == pytest.approx(1 - abar, rel=0.04)
    torch.testing.assert_close(out[0], x0, rtol=0, atol=1e-4)


def test_a_deterministic_strided_chain_draws_nothing_after_its_start():
    diffusion = GaussianDiffusion(num_steps=50)
    torch.manual_seed(0)
    denoiser = ConditionalDenoiser(3, hidden_multiplier=2).eval()
    condition, x_start = torch.randn(8, 3), torch.randn(8, 3)
    chain = ReverseChain(stride=0, eta=0.0)
    one = diffusion.sample_chain(denoiser, condition, [5, 25], torch.Generator().manual_seed(1), x_start, chain=chain)
    two = diffusion.sample_chain(denoiser, condition, [5, 25], torch.Generator().manual_seed(2), x_start, chain=chain)
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_a_bad_chain_setting_names_the_param():
    with pytest.raises(ValueError, match="train.chain_stride"):
        train_config(chain_stride=-1)
    with pytest.raises(ValueError, match="train.chain_eta"):
        train_config(chain_eta=1.5)
    assert train_config(chain_stride=0).chain.label == "stride_0_eta_1"
