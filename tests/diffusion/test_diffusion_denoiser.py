"""The noise predictor: time embedding, layout, shapes, and that a trained one samples its distribution."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dhns.config import FULL_CHAIN
from dhns.diffusion import ConditionalDenoiser, GaussianDiffusion, sinusoidal_embedding

Tensor = torch.Tensor

# Toy conditional distribution: x0 ~ N(c, 0.1^2 I) for c in {(-2, 0), (2, 0)}.
CENTERS = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])  # (2, 2)
TOY_STD = 0.1
NUM_STEPS = 50
SAMPLES_PER_CENTER = 1_000


def draw_toy_batch(size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(x0, condition), both (size, 2)."""
    condition = CENTERS[torch.randint(0, 2, (size,), generator=generator)]
    return condition + TOY_STD * torch.randn(size, 2, generator=generator), condition


def toy_denoiser() -> ConditionalDenoiser:
    # A width-2 sinusoid has one frequency, under which steps 0 and 44 nearly coincide; 16 keeps them apart.
    torch.manual_seed(0)
    return ConditionalDenoiser(width=2, time_dim=16)


def chain_per_center(
    diffusion: GaussianDiffusion, denoiser: ConditionalDenoiser, keep_steps: list[int]
) -> list[dict[int, Tensor]]:
    """One seeded chain of 1000 samples per toy center."""
    generator = torch.Generator().manual_seed(1)
    return [
        diffusion.sample_chain(denoiser, center.expand(SAMPLES_PER_CENTER, 2), keep_steps, generator, chain=FULL_CHAIN)
        for center in CENTERS
    ]


@pytest.fixture(scope="module")
def trained_toy() -> tuple[GaussianDiffusion, ConditionalDenoiser]:
    """The design's T = 50 schedule and layout, trained for ~2 s on CPU."""
    diffusion, denoiser = GaussianDiffusion(NUM_STEPS), toy_denoiser()
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3_000):
        x0, condition = draw_toy_batch(256, generator)
        loss = diffusion.training_loss(denoiser, x0, condition, loss_type="l2", generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return diffusion, denoiser


# ----- time embedding -------------------------------------------------------------------------------


def test_sinusoidal_embedding_values():
    t = torch.tensor([0, 1, 7])
    embedding = sinusoidal_embedding(t, 8)  # frequencies 1, 10^-4/3, 10^-8/3, 10^-4
    assert embedding.shape == (3, 8) and embedding.dtype == torch.float32
    frequencies = torch.tensor([1.0, 10 ** (-4 / 3), 10 ** (-8 / 3), 1e-4])
    angles = t[:, None].float() * frequencies
    torch.testing.assert_close(embedding, torch.cat([angles.sin(), angles.cos()], dim=1))
    torch.testing.assert_close(embedding[0], torch.tensor([0.0] * 4 + [1.0] * 4))


def test_sinusoidal_embedding_pads_odd_dims_and_rejects_tiny_ones():
    t = torch.arange(5)
    odd = sinusoidal_embedding(t, 7)
    assert odd.shape == (5, 7)
    torch.testing.assert_close(odd[:, :6], sinusoidal_embedding(t, 6))
    assert (odd[:, 6] == 0).all()
    torch.testing.assert_close(sinusoidal_embedding(t, 2), torch.stack([t.float().sin(), t.float().cos()], dim=1))
    with pytest.raises(ValueError):
        sinusoidal_embedding(t, 1)


@pytest.mark.parametrize("dim", [16, 64])
def test_sinusoidal_embedding_is_distinct_for_every_step(dim):
    embedding = sinusoidal_embedding(torch.arange(NUM_STEPS), dim)  # (T, dim)
    distances = torch.cdist(embedding, embedding) + torch.eye(NUM_STEPS) * 1e9
    assert distances.min() > 0.1


# ----- layout and shapes ----------------------------------------------------------------------------


def test_denoiser_has_the_design_layout():
    denoiser = ConditionalDenoiser(width=6, time_dim=10)
    time_layers = list(denoiser.time_mlp)
    assert [type(layer) for layer in time_layers] == [nn.Linear, nn.GELU, nn.Linear]
    assert (time_layers[0].in_features, time_layers[0].out_features) == (10, 6)
    assert (time_layers[2].in_features, time_layers[2].out_features) == (6, 6)
    layers = list(denoiser.net)
    assert [type(layer) for layer in layers] == [nn.LayerNorm, nn.Linear, nn.ReLU, nn.LayerNorm, nn.Linear, nn.Linear]
    assert layers[0].normalized_shape == (18,) and layers[3].normalized_shape == (24,)
    assert [(layer.in_features, layer.out_features) for layer in layers if isinstance(layer, nn.Linear)] == [
        (18, 24),
        (24, 6),
        (6, 6),
    ]
    assert ConditionalDenoiser(width=6).time_dim == 6
    assert ConditionalDenoiser(width=1).time_dim == 2


@pytest.mark.parametrize("width", [1, 5, 8])
def test_denoiser_maps_batches_to_the_entity_width(width):
    denoiser = ConditionalDenoiser(width)
    out = denoiser(torch.randn(7, width), torch.randint(0, NUM_STEPS, (7,)), torch.randn(7, width))
    assert out.shape == (7, width) and out.dtype == torch.float32


def test_denoiser_output_depends_on_step_and_condition():
    torch.manual_seed(0)
    denoiser = ConditionalDenoiser(4)
    x_t, condition = torch.randn(3, 4), torch.randn(3, 4)
    base = denoiser(x_t, torch.tensor([0, 0, 0]), condition)
    assert not torch.allclose(base, denoiser(x_t, torch.tensor([30, 30, 30]), condition))
    assert not torch.allclose(base, denoiser(x_t, torch.tensor([0, 0, 0]), condition + 1))


def test_denoiser_gradients_reach_every_parameter():
    denoiser = ConditionalDenoiser(4)
    denoiser(torch.randn(5, 4), torch.randint(0, NUM_STEPS, (5,)), torch.randn(5, 4)).square().sum().backward()
    for name, parameter in denoiser.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"width": 4, "hidden_multiplier": 0}, {"width": 4, "time_dim": 1}])
def test_denoiser_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        ConditionalDenoiser(**kwargs)


def test_denoiser_rejects_mismatched_inputs():
    denoiser = ConditionalDenoiser(4)
    with pytest.raises(ValueError):
        denoiser(torch.randn(3, 4), torch.zeros(3, dtype=torch.long), torch.randn(3, 5))
    with pytest.raises(ValueError):
        denoiser(torch.randn(3, 5), torch.zeros(3, dtype=torch.long), torch.randn(3, 5))


# ----- a trained denoiser samples its conditional distribution --------------------------------------


def looks_like_the_toy_distribution(samples: Tensor, center: Tensor) -> bool:
    """Mean within 0.15 of the center and every coordinate's std within [0.5, 2.5] x the true 0.1."""
    std = samples.std(0)
    mean_ok = (samples.mean(0) - center).abs().max() < 0.15
    return bool(mean_ok and (std > 0.5 * TOY_STD).all() and (std < 2.5 * TOY_STD).all())


def test_untrained_denoiser_misses_the_toy_distribution():
    diffusion, denoiser = GaussianDiffusion(NUM_STEPS), toy_denoiser()
    for center, chain in zip(CENTERS, chain_per_center(diffusion, denoiser, [0])):
        assert not looks_like_the_toy_distribution(chain[0], center)


def test_trained_denoiser_samples_the_toy_distribution(trained_toy):
    diffusion, denoiser = trained_toy
    for center, chain in zip(CENTERS, chain_per_center(diffusion, denoiser, [0])):
        samples = chain[0]  # (1000, 2)
        assert looks_like_the_toy_distribution(samples, center), (samples.mean(0), samples.std(0))


def test_fewer_denoising_steps_give_easier_negatives(trained_toy):
    # Hardness levels: the state with k steps left is farther from the condition's true mean the larger k is.
    diffusion, denoiser = trained_toy
    steps = [0, NUM_STEPS // 10, NUM_STEPS // 4, NUM_STEPS // 2, NUM_STEPS]
    for center, chain in zip(CENTERS, chain_per_center(diffusion, denoiser, steps)):
        distance = [(chain[k] - center).norm(dim=1).mean().item() for k in steps]
        assert distance == sorted(distance), distance
        assert distance[0] < 2 * TOY_STD * math.sqrt(2)  # the hardest level sits on the data
        assert distance[3] > 2 * distance[0]
        assert distance[4] > 1.5 * distance[3]
