"""The noise predictor eps_theta(x_t, t, C) of DiffHEG, an MLP over [x_t, time embedding, condition].

The layer layout follows the DHNS design note exactly, so that generator checkpoints and FLOP counts are
comparable with the reference; the hidden width is a parameter only for tests and ablations.

Training calls `forward`. The reverse chain instead calls `prepare(condition)` once and the returned
`PreparedDenoisers` at every step: the same function, restructured so that everything depending only on the
condition or only on the step is computed once (see `PreparedDenoisers`). `DenoiserStack` runs several
same-shape denoisers (one per semantic level) as one batched call per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dhns import native

Tensor = torch.Tensor

MAX_PERIOD = 10_000.0
MATMUL_WEIGHTS = ("first_x", "first_c", "last", "last_bias")  # the prepared weights the chain's matmuls read


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """(B,) steps -> (B, dim) float32 features [sin(t f_i), cos(t f_i)].

    The dim // 2 frequencies f_i fall geometrically from 1 to 1 / 10000, so nearby steps differ in the
    fast features and distant ones in the slow features; an odd dim gets a trailing zero column
    rather than an unpaired sine, keeping the two halves aligned.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"embedding dim must be an integer >= 2, got {dim!r}")
    half = dim // 2
    exponents = torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1)  # (half,) in [0, 1]
    frequencies = torch.exp(-math.log(MAX_PERIOD) * exponents)  # (half,) from 1 down to 1e-4
    angles = t.to(torch.float32).unsqueeze(-1) * frequencies  # (B, half)
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (B, 2 * half)
    if dim % 2:
        embedding = nn.functional.pad(embedding, (0, 1))  # (B, dim)
    return embedding


class ConditionalDenoiser(nn.Module):
    """Predicts the noise in x_t from the step and the condition C(e, r); all widths are the entity width."""

    def __init__(self, width: int, time_dim: int | None = None, hidden_multiplier: int = 4) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if hidden_multiplier < 1:
            raise ValueError(f"hidden_multiplier must be >= 1, got {hidden_multiplier}")
        time_dim = max(width, 2) if time_dim is None else time_dim  # a sine and a cosine at least
        if time_dim < 2:
            raise ValueError(f"time_dim must be >= 2 (a sine and a cosine), got {time_dim}")
        self.width = width
        self.time_dim = time_dim
        hidden = hidden_multiplier * width
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, width), nn.GELU(), nn.Linear(width, width))
        self.net = nn.Sequential(
            nn.LayerNorm(3 * width),
            nn.Linear(3 * width, hidden),
            nn.ReLU(),
            nn.LayerNorm(hidden),
            nn.Linear(hidden, width),
            nn.Linear(width, width),
        )

    def forward(self, x_t: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        """(B, width) noisy states, (B,) long steps, (B, width) conditions -> (B, width) predicted noise."""
        if x_t.shape != condition.shape or x_t.shape[-1] != self.width:
            raise ValueError(
                f"x_t {tuple(x_t.shape)} and condition {tuple(condition.shape)} must both be (B, {self.width})"
            )
        tau = self.time_mlp(sinusoidal_embedding(t, self.time_dim).to(x_t.dtype))  # (B, width)
        return self.net(torch.cat([x_t, tau, condition], dim=-1))  # (B, 3 width) -> (B, width)

    def prepare(self, condition: Tensor) -> PreparedDenoisers:
        """Bind a (N, width) condition for a whole reverse chain.

        `prepare(c)(x_t, t)` equals `self(x_t, torch.full((N,), t), c)` up to float rounding, at under half
        the cost per step. Reads the current weights: prepare again after an optimizer step.
        """
        if condition.dim() != 2:
            raise ValueError(f"condition must be (N, {self.width}), got {tuple(condition.shape)}")
        return PreparedDenoisers((self,), condition)


def _layout(denoiser: ConditionalDenoiser) -> tuple[int, int, int, float, float]:
    """What must agree for denoisers to be stacked: width, time_dim, hidden width, both LayerNorm eps."""
    return (denoiser.width, denoiser.time_dim, denoiser.net[1].out_features, denoiser.net[0].eps, denoiser.net[3].eps)


class DenoiserStack:
    """Same-layout denoisers (one per semantic level) evaluated as one batched call per reverse step.

    Holds references, not copies: each denoiser stays its own module, trained and saved separately;
    `prepare` stacks their current weights.
    """

    def __init__(self, denoisers: Sequence[ConditionalDenoiser]) -> None:
        self.denoisers = tuple(denoisers)
        if not self.denoisers:
            raise ValueError("a DenoiserStack needs at least one denoiser")
        layouts = sorted({_layout(denoiser) for denoiser in self.denoisers})
        if len(layouts) > 1:
            raise ValueError(f"stacked denoisers must share (width, time_dim, hidden, eps, eps); got {layouts}")

    def __len__(self) -> int:
        return len(self.denoisers)

    def __call__(self, x_t: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        """(L, N, w) states, (N,) steps, (L, N, w) conditions -> (L, N, w): each level's plain forward."""
        if x_t.dim() != 3 or x_t.shape[0] != len(self.denoisers):
            raise ValueError(f"x_t must be ({len(self.denoisers)}, N, w), got {tuple(x_t.shape)}")
        return torch.stack([denoiser(x_t[i], t, condition[i]) for i, denoiser in enumerate(self.denoisers)])

    def prepare(self, condition: Tensor) -> PreparedDenoisers:
        """(L, N, width) conditions, slice l for denoiser l -> predictor of (L, N, width) noise."""
        return PreparedDenoisers(self.denoisers, condition)


def _centred(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Row mean (..., 1), centred values (..., n) and their sum of squares (..., 1)."""
    mean = z.mean(dim=-1, keepdim=True)
    centred = z - mean
    return mean, centred, torch.linalg.vector_norm(centred, dim=-1, keepdim=True).square_()  # one pass, no temporary


def _folded_weights(denoiser: ConditionalDenoiser) -> dict[str, Tensor]:
    """One denoiser's weights rearranged for `PreparedDenoisers`, every matrix as (in, out)."""
    time_in, _, time_out = denoiser.time_mlp
    norm_in, first, _, norm_hidden, second, third = denoiser.net
    width, hidden = denoiser.width, first.out_features
    folded = first.weight * norm_in.weight  # (hidden, 3 width): W1 diag(gamma1)
    part_x, part_tau, part_c = folded.split(width, dim=1)  # (hidden, width) each
    part_sums = folded.reshape(hidden, 3, width).sum(dim=-1)  # (hidden, 3): W1g_p 1 for p = x, tau, c
    last = third.weight @ second.weight  # (width, hidden): two Linears with nothing between are one
    return {
        "time_in": time_in.weight.T,  # (time_dim, width)
        "time_in_bias": time_in.bias[None],  # (1, width)
        "time_out": time_out.weight.T,  # (width, width)
        "time_out_bias": time_out.bias[None],  # (1, width)
        # (width + 4, hidden): x's rows, the 3 part sums, and a row for the step's tau term (filled per step)
        "first_x": torch.cat([part_x.T, part_sums.T, part_sums.new_zeros(1, hidden)]),
        "first_tau": part_tau.T,  # (width, hidden)
        "first_c": part_c.T,  # (width, hidden)
        "first_bias": (first.weight @ norm_in.bias + first.bias)[None],  # (1, hidden): W1 beta1 + b1
        "last": (last * norm_hidden.weight).T,  # (hidden, width): W3 W2 diag(gamma2)
        "last_bias": (third.weight @ (second.weight @ norm_hidden.bias + second.bias) + third.bias)[None],  # (1, width)
    }


class PreparedDenoisers:
    """eps_theta(x_t, t, C) of L same-layout denoisers with their conditions C bound for a reverse chain.

    An exact restructuring of `ConditionalDenoiser.forward` (differences are float rounding only):
    - First layer. With z = [x, tau, c] (three parts of width w), LayerNorm statistics mu, sigma of each row,
      and W1g = W1 diag(gamma1):  W1 LayerNorm(z) + b1 = W1g (z - mu) / sigma + (W1 beta1 + b1), and
      W1g (z - mu) = sum_p W1g_p (z_p - m_p) + sum_p (m_p - mu) W1g_p 1, where m_p is part p's row mean.
      mu is the mean of the three m_p; sigma^2 = (sum_p M2_p + w sum_p (m_p - mu)^2) / 3w, with M2_p part
      p's centred sum of squares (Chan et al.'s pairwise combination). Centring every part before use
      keeps this as accurate as LayerNorm's own two-pass computation, whatever the rows' mean.
    - The condition's W1g_c (c - m_c), m_c and M2_c are computed here, once per chain. tau depends only on
      the step, which all rows share: its term W1g_tau (tau - m_tau) is one row per step, added inside the
      per-row matmul as the weight of a constant-one input column, next to the three (m_p - mu) columns.
    - Last layers. Linear(Linear(LayerNorm(h))) has no nonlinearity between the Linears: one matrix
      W3 W2 diag(gamma2) and one bias, after a LayerNorm without affine parameters.
    Per step and row that is (w + 4) h + h w multiply-adds instead of 3 w h + h w + w^2 (plus the time MLP),
    about 2.4 times fewer at the design's h = 4 w.

    Sampling only: it runs without autograd, reads the weights once (prepare again after an optimizer step)
    and, on CPU, reuses one work buffer across calls, so one instance serves one chain at a time.
    """

    @torch.no_grad()
    def __init__(self, denoisers: Sequence[ConditionalDenoiser], condition: Tensor) -> None:
        self.width, self.time_dim, self.hidden, self.eps_in, self.eps_hidden = _layout(denoisers[0])
        self.single = condition.dim() == 2  # a lone denoiser's (N, w) condition: no level axis
        stacked_condition = condition.unsqueeze(0) if self.single else condition  # (L, N, w)
        levels = len(denoisers)
        if stacked_condition.dim() != 3 or stacked_condition.shape[0] != levels or condition.shape[-1] != self.width:
            raise ValueError(f"condition must be ({levels}, N, {self.width}), got {tuple(condition.shape)}")
        self.device_type = condition.device.type
        # The matmuls' dtype: autocast's where the chain runs under it (bf16 on CPUs), cast here once per chain
        # rather than by autocast at every call; the elementwise work between them stays fp32.
        autocast = torch.is_autocast_enabled(self.device_type)
        self.dtype = torch.get_autocast_dtype(self.device_type) if autocast else condition.dtype
        with torch.autocast(self.device_type, enabled=False):
            per_level = [_folded_weights(denoiser) for denoiser in denoisers]
            weights = {name: torch.stack([folded[name] for folded in per_level]) for name in per_level[0]}  # (L, ...)
            self.weights = weights | {name: weights[name].to(self.dtype) for name in MATMUL_WEIGHTS}
            self.state_shape = stacked_condition.shape
            # (L, N, 1), (L, N, w), (L, N, 1)
            self.condition_mean, centred, self.condition_m2 = _centred(stacked_condition)
            # (L, N, hidden): W1g_c (c - m_c), the first matmul's constant term
            self.condition_term = torch.bmm(centred.to(self.dtype), self.weights["first_c"])
        # the first matmul's (L, N, w + 4) input, rewritten at every step; its last column, the constant-one
        # input of tau's term, never changes
        self.inputs = centred.new_ones(levels, centred.shape[1], self.width + 4, dtype=self.dtype)
        # A fresh multi-MB CPU buffer page-faults at every step (about a quarter of a step at width 200), so
        # CPU steps reuse one. CUDA's caching allocator needs none.
        self.work = torch.empty_like(self.condition_term) if self.device_type == "cpu" else None

    def time_features(self, t: int, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """tau_t's row mean (L, 1, 1), centred sum of squares (L, 1, 1) and W1g_tau (tau - m_tau) (L, 1, hidden)."""
        weights = self.weights
        steps = torch.full((1,), t, dtype=torch.long, device=weights["time_in"].device)
        embedding = sinusoidal_embedding(steps, self.time_dim).to(dtype)  # (1, time_dim), as forward casts it
        embedding = embedding.expand(self.state_shape[0], 1, self.time_dim)  # (L, 1, time_dim)
        tau = torch.baddbmm(weights["time_in_bias"], embedding, weights["time_in"])  # (L, 1, w)
        tau = torch.baddbmm(weights["time_out_bias"], F.gelu(tau), weights["time_out"])  # (L, 1, w)
        mean, centred, m2 = _centred(tau)
        return mean, m2, torch.bmm(centred, weights["first_tau"])

    @torch.no_grad()
    def __call__(self, x_t: Tensor, t: int) -> Tensor:
        """(L, N, w) states (or (N, w) for a lone denoiser) at step t -> predicted noise of the same shape."""
        x = x_t.unsqueeze(0) if self.single else x_t  # (L, N, w)
        if x.shape != self.state_shape:
            raise ValueError(f"x_t has shape {tuple(x_t.shape)}, the bound condition {tuple(self.state_shape)}")
        with torch.autocast(self.device_type, enabled=False):
            noise = self._noise(x.to(self.condition_mean.dtype), t).to(x.dtype)
        return noise.squeeze(0) if self.single else noise

    def _noise(self, x: Tensor, t: int) -> Tensor:
        weights = self.weights
        tau_mean, tau_m2, tau_term = self.time_features(t, x.dtype)  # (L, 1, 1), (L, 1, 1), (L, 1, hidden)
        weights["first_x"][:, -1:].copy_(tau_term)  # the weight of the constant-one input column
        inputs = self.inputs  # (L, N, w + 4) = [x - m_x, shifts, 1], written in place in the matmuls' dtype
        if self.work is not None and x.dtype == torch.float32 and native.hidden_usable(inputs):  # one pass per row
            row_scale = native.denoiser_inputs_(inputs, x, tau_mean, tau_m2, self.condition_mean, self.condition_m2,
                                                self.eps_in)
        else:
            row_scale = self._first_inputs(x, tau_mean, tau_m2)
        if self.work is not None and native.hidden_usable(self.work, self.condition_term):  # the CPU's buffer
            # W1g (z - mu) without the condition's term, which the compiled pass adds as it reads each row:
            # baddbmm would first copy that (L, N, hidden) term into its output, then read it back
            hidden = torch.bmm(inputs, weights["first_x"], out=self.work)
            normed = native.denoiser_hidden_(hidden, row_scale, weights["first_bias"], self.eps_hidden,
                                             addend=self.condition_term)
        else:
            hidden = torch.baddbmm(self.condition_term, inputs, weights["first_x"], out=self.work)  # W1g (z - mu)
            normed = self._activate_and_normalise(hidden, row_scale)  # (L, N, hidden)
        return torch.baddbmm(weights["last_bias"], normed, weights["last"])  # (L, N, w)

    def _first_inputs(self, x: Tensor, tau_mean: Tensor, tau_m2: Tensor) -> Tensor:
        """Writes x - m_x and the three shifts m_p - mu into `inputs`; returns LayerNorm([x, tau, c])'s (L, N, 1)
        1 / sigma. PyTorch's form of the compiled pass (`dhns.native.denoiser_inputs_`)."""
        width = self.width
        x_mean, x_centred, x_m2 = _centred(x)  # (L, N, 1), (L, N, w), (L, N, 1)
        mean = (x_mean + tau_mean + self.condition_mean) / 3  # (L, N, 1): the parts have equal widths
        shifts = torch.cat([x_mean - mean, (tau_mean - mean), self.condition_mean - mean], dim=-1)  # (L, N, 3)
        variance = (x_m2 + tau_m2 + self.condition_m2 + width * shifts.square().sum(-1, keepdim=True)) / (3 * width)
        self.inputs[..., :width].copy_(x_centred)
        self.inputs[..., width : width + 3].copy_(shifts)
        return torch.rsqrt(variance + self.eps_in)

    def _activate_and_normalise(self, hidden: Tensor, row_scale: Tensor) -> Tensor:
        """LayerNorm(relu(hidden * row_scale + b1)), fp32 math or wider, in the matmuls' dtype (gamma2, beta2: "last").

        PyTorch's form of the compiled pass (`dhns.native.denoiser_hidden_`), for GPUs and machines without it.
        """
        wide = hidden if hidden.element_size() >= 4 else hidden.float()  # fp32 (or fp64) math
        wide.mul_(row_scale).add_(self.weights["first_bias"]).relu_()
        return F.layer_norm(wide, (self.hidden,), eps=self.eps_hidden).to(self.dtype)
