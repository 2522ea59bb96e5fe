"""The DDPM process over embeddings, kept apart from the network that predicts noise.

The denoiser is passed to every method, so one process serves every scorer, modality and side, and the
reverse chain can hand out intermediate states as negatives of graded hardness.

Index convention (0-based, as in improved-diffusion): timestep t in [0, T-1] labels the noise level
`alphas_cumprod[t]`; q_sample(x0, t) is x0 after t + 1 applications of the one-step kernel
q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I). A reverse step at t consumes a state at
level t and returns one at level t - 1, and the step at t = 0 returns the clean sample.

Two reverse chains reach the same states. The full chain takes every DDPM ancestral step (T denoiser
calls to reach k = 0). The strided chain (`ReverseChain(stride, eta)`) jumps between non-adjacent steps
with DDIM's update (Song et al. 2021, eq. 12): predict x0 from the noise estimate, move it to the target
level along the predicted noise, and add fresh noise of standard deviation eta * sigma, where eta = 1 is
the DDPM posterior variance of that jump and eta = 0 a deterministic chain. With stride 1 and eta = 1 the
update equals the DDPM step, so the hardness levels keep their meaning while the chain visits only the
steps they need (4 calls instead of 45 for the reference's levels).

The reverse process binds the condition to the denoiser once per chain (`bind_condition`): a denoiser that
offers `prepare(condition)` then precomputes everything that depends only on the condition, and the states
may carry leading axes (a `DenoiserStack` samples all semantic levels as one (L, N, d) chain).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import torch
from torch import nn

from dhns.config import ReverseChain
from dhns.diffusion.noise import ChainNoise

Tensor = torch.Tensor

LOSS_TYPES = ("l1", "l2")


class Denoiser(Protocol):
    """Anything that predicts the noise in x_t: (..., B, d) states, (B,) long steps, (..., B, d) conditions."""

    def __call__(self, x_t: Tensor, t: Tensor, condition: Tensor) -> Tensor: ...


NoisePredictor = Callable[[Tensor, int], Tensor]
"""A denoiser with its condition bound: (..., d) states and one step t shared by all rows -> (..., d) noise."""


class PreparableDenoiser(Protocol):
    """A denoiser that can bind a condition for a whole chain (ConditionalDenoiser, DenoiserStack)."""

    def prepare(self, condition: Tensor) -> NoisePredictor: ...


AnyDenoiser = Denoiser | PreparableDenoiser


def bind_condition(denoiser: AnyDenoiser, condition: Tensor) -> NoisePredictor:
    """The reverse process's view of a denoiser: predict(x_t, t) with the condition fixed.

    Without autograd (as in every chain) this is `denoiser.prepare(condition)` where that exists: exact up
    to float rounding, and sampling-only. Otherwise the denoiser is called as in training, with a (B,)
    tensor of the step, so gradients follow the caller's grad mode.
    """
    prepare = getattr(denoiser, "prepare", None)
    if callable(prepare) and not torch.is_grad_enabled():
        return prepare(condition)

    def predict(x_t: Tensor, t: int) -> Tensor:
        steps = torch.full(x_t.shape[-2:-1], t, dtype=torch.long, device=x_t.device)  # (B,): one per row
        return denoiser(x_t, steps, condition)

    return predict


def chain_visits(num_steps: int, keep_steps: Sequence[int], stride: int) -> list[int]:
    """The steps left (k) a strided chain visits, descending from T to the smallest kept step.

    Every kept step is visited; between two, intermediate ones are added every `stride` steps below the
    upper one, so no jump exceeds `stride` (0: no intermediate steps).
    """
    targets = sorted(set(keep_steps) | {num_steps}, reverse=True)
    visits = [targets[0]]
    for lower in targets[1:]:
        if stride:
            visits.extend(range(visits[-1] - stride, lower, -stride))
        visits.append(lower)
    return visits


def _per_row(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """Pick one schedule value per row and shape it (B, 1, ..., 1) so it broadcasts over `like`."""
    picked = values.to(like.dtype)[t]  # (B,)
    return picked.reshape(t.shape[0], *([1] * (like.dim() - 1)))


class GaussianDiffusion(nn.Module):
    """Linear-beta DDPM with noise prediction and ancestral sampling.

    Schedules are derived in float64 (the 1 / (1 - abar_t) terms near t = 0 and the cumulative product
    lose digits in float32) and stored as float32 buffers: activations are float32, and float64 buffers
    would silently promote every product to float64 (and do not exist on some devices). Buffers follow
    `.to(device)`, so nothing here names a device. They are non-persistent: they are a pure function of
    the constructor arguments, so checkpoints need not carry them.
    """

    def __init__(self, num_steps: int = 50, beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        super().__init__()
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}")
        self.num_steps = num_steps
        self.beta_start = beta_start
        self.beta_end = beta_end

        betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)  # (T,)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])  # abar_{-1} = 1
        # q(x_{t-1} | x_t, x0) = N(coef_x0 x0 + coef_xt x_t, posterior_variance); zero variance at t = 0.
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        # log(0) at t = 0 is replaced by the next step's value; no noise is ever drawn at t = 0 anyway.
        first = posterior_variance[1:2] if num_steps > 1 else betas[:1]
        posterior_log_variance_clipped = torch.log(torch.cat([first, posterior_variance[1:]]))

        schedule = {
            "betas": betas,
            "alphas": alphas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
            "sqrt_recip_alphas": alphas.rsqrt(),
            # Weight of the predicted noise in the reverse mean: beta_t / sqrt(1 - abar_t).
            "noise_coef": betas / (1.0 - alphas_cumprod).sqrt(),
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": posterior_log_variance_clipped,
            "posterior_mean_coef_x0": betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod),
            "posterior_mean_coef_xt": (1.0 - alphas_cumprod_prev) * alphas.sqrt() / (1.0 - alphas_cumprod),
        }
        for name, values in schedule.items():
            self.register_buffer(name, values.float(), persistent=False)
        # The strided update's coefficients are computed per jump in double precision on the host.
        self._abar = tuple(float(value) for value in alphas_cumprod)
        # The ancestral step's noise scale sigma_t, on the host too: the chain's noise takes it as a number.
        self._deviation = tuple(math.exp(0.5 * float(value)) for value in posterior_log_variance_clipped)

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, beta_start={self.beta_start}, beta_end={self.beta_end}"

    # ----- forward process -------------------------------------------------------------------------

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise; t is (B,) long, noise is explicit for testability."""
        return (
            _per_row(self.sqrt_alphas_cumprod, t, x0) * x0
            + _per_row(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise
        )

    def q_posterior_mean(self, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Mean of q(x_{t-1} | x_t, x0): the target that a reverse step should hit when x0 is known."""
        return _per_row(self.posterior_mean_coef_x0, t, x_t) * x0 + _per_row(self.posterior_mean_coef_xt, t, x_t) * x_t

    def training_loss(
        self,
        denoiser: Denoiser,
        x0: Tensor,
        condition: Tensor,
        *,
        loss_type: str = "l1",
        generator: torch.Generator | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Scalar noise-prediction error at one uniform random step per row.

        Draws t (B,) first and the noise second from `generator`, so a caller holding an identically
        seeded generator can reproduce both. L1 is the reference's choice; l2 is the DDPM paper's.

        `mask` (B,) bool restricts the mean to the rows it keeps, without selecting them (no host sync):
        every row still draws its t and noise, masked rows' inputs are zeroed so their values (even
        non-finite ones) reach neither the loss nor the gradient, and a mask keeping no row gives exactly 0.
        With every row kept the value equals the unmasked one (up to float summation order).
        """
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {', '.join(LOSS_TYPES)}")
        if mask is not None:
            keep = mask.to(device=x0.device, dtype=torch.bool)[:, None]  # (B, 1)
            x0 = torch.where(keep, x0, torch.zeros((), device=x0.device, dtype=x0.dtype))
            condition = torch.where(keep, condition, torch.zeros((), device=condition.device, dtype=condition.dtype))
        batch = x0.shape[0]
        t = torch.randint(0, self.num_steps, (batch,), generator=generator, device=x0.device)  # (B,)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)  # (B, d)
        predicted = denoiser(self.q_sample(x0, t, noise), t, condition)  # (B, d)
        error = predicted - noise
        if mask is None:
            return error.abs().mean() if loss_type == "l1" else error.square().mean()
        per_row = (error.abs() if loss_type == "l1" else error.square()).mean(dim=-1, dtype=torch.float32)  # (B,)
        kept = keep[:, 0]
        total = torch.where(kept, per_row, torch.zeros((), device=per_row.device, dtype=per_row.dtype)).sum()
        return total / kept.sum(dtype=torch.float32).clamp(min=1.0)

    # ----- reverse process -------------------------------------------------------------------------

    def p_mean(self, denoiser: AnyDenoiser, x_t: Tensor, t: int, condition: Tensor) -> Tensor:
        """Mean of p(x_{t-1} | x_t): (x_t - beta_t / sqrt(1 - abar_t) eps_hat) / sqrt(alpha_t).

        This is the posterior mean with x0 replaced by its noise-based estimate, in a form that needs no
        x0 clipping (embeddings are unbounded, unlike images).
        """
        return self._reverse_mean(bind_condition(denoiser, condition), x_t, t)

    def _reverse_mean(self, predict: NoisePredictor, x_t: Tensor, t: int) -> Tensor:
        predicted_noise = predict(x_t, t)  # (..., d)
        return self.sqrt_recip_alphas[t].to(x_t.dtype) * (x_t - self.noise_coef[t].to(x_t.dtype) * predicted_noise)

    def p_sample(
        self,
        denoiser: AnyDenoiser,
        x_t: Tensor,
        t: int,
        condition: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One ancestral step from level t to t - 1: mean + sigma_t z, with no noise at t = 0.

        sigma_t^2 is the posterior variance (DDPM's "fixed small" choice). Gradients follow the caller's
        grad mode; `sample_chain` is where sampling is made gradient-free.
        """
        if not 0 <= t < self.num_steps:
            raise ValueError(f"t must be in [0, {self.num_steps - 1}], got {t}")
        return self._reverse_step(bind_condition(denoiser, condition), x_t, t, ChainNoise(generator, x_t.device))

    def _reverse_step(self, predict: NoisePredictor, x_t: Tensor, t: int, noise: ChainNoise) -> Tensor:
        mean = self._reverse_mean(predict, x_t, t)
        if t == 0:
            return mean
        return noise.jump(mean, self._deviation[t], mean, 1.0)  # (..., d): sigma_t z + mean

    def iterate_chain(
        self,
        denoiser: AnyDenoiser,
        condition: Tensor,
        generator: torch.Generator | None = None,
        x_start: Tensor | None = None,
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield (k, x_k) for k = T, T-1, ..., 0, where k counts the denoising steps still to do.

        x_T is the start (N(0, I) of condition's shape, or `x_start`); x_k for k < T is the output of the
        reverse step at timestep k, i.e. a state at noise level `alphas_cumprod[k - 1]` for k >= 1, and the
        clean sample for k = 0. Every step runs without autograd, but grad mode is switched off only
        around each step, never across a `yield`, so the caller's own code between steps is unaffected.

        The condition is bound once (`bind_condition`). Random numbers (`ChainNoise`, keyed once from
        `generator`): x_T (unless given) is one draw of condition's shape, then each step t >= 1 draws one more
        of that shape; leading axes such as a DenoiserStack's levels are part of each draw.
        """
        noise = ChainNoise(generator, condition.device)
        x = self._chain_start(condition, noise, x_start)
        with torch.no_grad():
            predict = bind_condition(denoiser, condition)
        yield self.num_steps, x  # (..., d)
        for t in range(self.num_steps - 1, -1, -1):
            with torch.no_grad():
                x = self._reverse_step(predict, x, t, noise)  # (..., d)
            yield t, x

    def level_of(self, k: int) -> float:
        """abar of the state with k steps left: alphas_cumprod[k - 1] for k >= 1, and 1 for the clean sample."""
        return self._abar[k - 1] if k >= 1 else 1.0

    def jump_coefficients(self, k: int, j: int, eta: float) -> tuple[float, float, float]:
        """(a, b, sigma) of the DDIM jump from k to j < k steps left: x_j = a x_k + b eps_hat + sigma z.

        From x0_hat = (x_k - sqrt(1 - abar_k) eps_hat) / sqrt(abar_k) and
        x_j = sqrt(abar_j) x0_hat + sqrt(1 - abar_j - sigma^2) eps_hat + sigma z, with
        sigma = eta sqrt((1 - abar_j) / (1 - abar_k)) sqrt(1 - abar_k / abar_j).
        """
        if not 0 <= j < k <= self.num_steps:
            raise ValueError(f"a jump needs 0 <= j < k <= {self.num_steps}, got k = {k}, j = {j}")
        abar_k, abar_j = self.level_of(k), self.level_of(j)
        sigma = eta * math.sqrt((1.0 - abar_j) / (1.0 - abar_k) * (1.0 - abar_k / abar_j))
        a = math.sqrt(abar_j / abar_k)
        b = math.sqrt(max(0.0, 1.0 - abar_j - sigma * sigma)) - a * math.sqrt(1.0 - abar_k)
        return a, b, sigma

    def iterate_strided_chain(
        self,
        denoiser: AnyDenoiser,
        condition: Tensor,
        visits: Sequence[int],
        eta: float,
        generator: torch.Generator | None = None,
        x_start: Tensor | None = None,
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield (k, x_k) for each k in `visits` (descending, starting at T), one denoiser call per jump.

        Random numbers as in `iterate_chain`: x_T (unless given) is one draw of condition's shape, then each
        jump to a k >= 1 draws one more when eta > 0. Grad mode is off only around each jump.
        """
        if not visits or visits[0] != self.num_steps or any(a <= b for a, b in zip(visits, visits[1:])):
            raise ValueError(f"visits must descend strictly from T = {self.num_steps}, got {list(visits)}")
        noise = ChainNoise(generator, condition.device)
        x = self._chain_start(condition, noise, x_start)
        with torch.no_grad():
            predict = bind_condition(denoiser, condition)
        yield visits[0], x
        for k, j in zip(visits, visits[1:]):
            with torch.no_grad():
                a, b, sigma = self.jump_coefficients(k, j, eta)
                predicted = predict(x, k - 1)  # the state with k steps left sits at timestep k - 1
                if j >= 1 and eta > 0:  # x_j = sigma z + a x_k + b eps_hat, one pass
                    x = noise.jump(x, sigma, x, a, predicted, b)
                else:
                    x = torch.mul(x, a).add_(predicted, alpha=b)
            yield j, x

    def sample_chain(
        self,
        denoiser: AnyDenoiser,
        condition: Tensor,
        keep_steps: Sequence[int],
        generator: torch.Generator | None = None,
        x_start: Tensor | None = None,
        *,
        chain: ReverseChain,
    ) -> dict[int, Tensor]:
        """Run the reverse chain and return {k: x_k} for each k in keep_steps, detached.

        k is the number of denoising steps that REMAIN (0 <= k <= T): k = T is the starting noise
        (an easy negative), k = T // 2 a half-denoised state, k = 0 the fully denoised sample (the
        hardest). For k >= 1, x_k sits at noise level `alphas_cumprod[k - 1]`, exactly as `iterate_chain`
        yields it. Keys come back in descending k. The chain stops once the smallest requested k is reached:
        later steps cannot change earlier states, so the result is the same as running to the end.

        With the design's T = 50 linear schedule abar_{T-1} is about 0.6, so the N(0, I) start is noisier
        than any state the forward process reaches; the reverse chain contracts that mismatch away by k = 0,
        but states near k = T are partly off the training distribution, which suits easy negatives.

        `chain` picks the full DDPM chain (the default) or a strided one (`ReverseChain`); both keep the
        same k, at the same noise levels.
        """
        wanted = self._validated_steps(keep_steps)
        last = min(wanted)
        kept: dict[int, Tensor] = {}
        if chain.is_full:
            states = self.iterate_chain(denoiser, condition, generator, x_start)
        else:
            visits = chain_visits(self.num_steps, sorted(wanted), chain.stride)
            states = self.iterate_strided_chain(denoiser, condition, visits, chain.eta, generator, x_start)
        for k, x in states:
            if k in wanted:
                kept[k] = x
            if k == last:
                break
        return {k: kept[k] for k in sorted(wanted, reverse=True)}

    @staticmethod
    def _chain_start(condition: Tensor, noise: ChainNoise, x_start: Tensor | None) -> Tensor:
        """x_T: N(0, I) of condition's shape (one draw), or the given start."""
        if x_start is None:
            return noise.normal(condition)
        if x_start.shape != condition.shape:
            raise ValueError(f"x_start has shape {tuple(x_start.shape)}, condition {tuple(condition.shape)}")
        return x_start.detach()

    def _validated_steps(self, keep_steps: Sequence[int]) -> set[int]:
        """Integers in [0, T], as a set; numpy integers from configs are accepted, floats and bools are not."""
        steps = list(keep_steps)
        if not steps:
            raise ValueError("keep_steps must name at least one step")
        wanted = set()
        for k in steps:
            try:
                step = operator.index(k) if not isinstance(k, bool) else None
            except TypeError:
                step = None
            if step is None or not 0 <= step <= self.num_steps:
                raise ValueError(f"each keep step must be an integer in [0, {self.num_steps}], got {k!r}")
            wanted.add(step)
        return wanted
