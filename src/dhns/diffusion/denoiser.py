"""The noise predictor eps_theta(x_t, t, C) of DiffHEG, an MLP over [x_t, time embedding, condition].

The layer layout follows the DHNS design note exactly, so that generator checkpoints and FLOP counts are
comparable with the reference; the hidden width is a parameter only for tests and ablations.
"""

from __future__ import annotations

import math

import torch
from torch import nn

Tensor = torch.Tensor

MAX_PERIOD = 10_000.0


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
