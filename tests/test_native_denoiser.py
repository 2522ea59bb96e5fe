"""The compiled hidden layer of the denoiser (`dhns.native.denoiser_hidden_`) and the chain that uses it."""

from __future__ import annotations

import math

import pytest
import torch

from dhns import native
from dhns.diffusion import ConditionalDenoiser
from dhns.diffusion.denoiser import DenoiserStack

needs_library = pytest.mark.skipif(not native.available(), reason="no C compiler")


def by_hand(hidden: list[float], addend: list[float], scale: float, bias: list[float], epsilon: float) -> list[float]:
    """One row in plain Python: v = relu((h + c) s + b), then (v - mean) / sqrt(biased variance + eps)."""
    v = [max(0.0, (h + c) * scale + b) for h, c, b in zip(hidden, addend, bias)]
    mean = sum(v) / len(v)
    variance = sum((x - mean) ** 2 for x in v) / len(v)
    return [(x - mean) / math.sqrt(variance + epsilon) for x in v]


@needs_library
@pytest.mark.parametrize("with_addend", [False, True])
def test_a_row_equals_the_hand_computation(with_addend):
    hidden = torch.tensor([[[0.5, -1.0, 2.0, 0.25, -0.125], [3.0, 1.0, -2.0, 0.0, 0.75]]])  # (1, 2, 5)
    addend = torch.tensor([[[0.25, 2.0, -0.5, 0.0, 1.0], [-1.0, 0.5, 4.0, 0.25, 0.0]]])
    scale = torch.tensor([[[0.5], [2.0]]])
    bias = torch.tensor([[[0.1, -0.2, 0.3, 0.0, 0.05]]])
    result = native.denoiser_hidden_(hidden.clone(), scale, bias, 1e-5, addend=addend if with_addend else None)
    for row in range(2):
        added = addend[0, row].tolist() if with_addend else [0.0] * 5
        expected = by_hand(hidden[0, row].tolist(), added, float(scale[0, row]), bias[0, 0].tolist(), 1e-5)
        assert result[0, row].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)


@needs_library
def test_a_row_that_relu_zeroes_normalises_to_zero_not_nan():
    hidden = -torch.ones(1, 1, 8)  # every activation is 0: variance 0, eps keeps the division finite
    result = native.denoiser_hidden_(hidden, torch.ones(1, 1, 1), torch.zeros(1, 1, 8), 1e-5)
    assert torch.equal(result, torch.zeros(1, 1, 8))


@needs_library
def test_bf16_storage_is_the_fp32_result_rounded_once():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 70, 48, generator=generator).bfloat16()  # bf16-representable inputs for both runs
    addend = torch.randn(2, 70, 48, generator=generator).bfloat16()
    scale = torch.rand(2, 70, 1, generator=generator) + 0.5
    bias = torch.randn(2, 1, 48, generator=generator)
    wide = native.denoiser_hidden_(hidden.float(), scale, bias, 1e-5, addend=addend.float())
    narrow = native.denoiser_hidden_(hidden.clone(), scale, bias, 1e-5, addend=addend)
    assert narrow.dtype == torch.bfloat16
    assert torch.equal(narrow, wide.bfloat16())  # PyTorch's round-to-nearest-even of the same fp32 values


@needs_library
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_nan_stays_a_nan(dtype):
    hidden = torch.ones(1, 2, 6, dtype=dtype)
    hidden[0, 0, 3] = float("nan")
    result = native.denoiser_hidden_(hidden, torch.ones(1, 2, 1), torch.arange(6.0).view(1, 1, 6), 1e-5)
    assert torch.isnan(result[0, 0]).all() and torch.isfinite(result[0, 1]).all()


@needs_library
def test_results_do_not_depend_on_the_thread_count():
    generator = torch.Generator().manual_seed(1)
    hidden, scale = torch.randn(2, 300, 40, generator=generator), torch.rand(2, 300, 1, generator=generator)
    bias = torch.randn(2, 1, 40, generator=generator)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.denoiser_hidden_(hidden.clone(), scale, bias, 1e-5)
        torch.set_num_threads(3)
        three = native.denoiser_hidden_(hidden.clone(), scale, bias, 1e-5)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, three)


@needs_library
def test_shapes_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        native.denoiser_hidden_(torch.zeros(2, 3, 4), torch.ones(2, 2, 1), torch.zeros(2, 1, 4), 1e-5)
    assert not native.hidden_usable(torch.zeros(2, 3, 4, dtype=torch.float64))
    assert not native.hidden_usable(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, dtype=torch.bfloat16))


def stacked_chain_noise(monkeypatch, compiled: bool, precision: str) -> torch.Tensor:
    """A two-level prepared denoiser's prediction at a few steps, with or without the compiled pass."""
    monkeypatch.setenv("DHNS_NATIVE", "1" if compiled else "0")
    torch.manual_seed(0)
    denoisers = [ConditionalDenoiser(24) for _ in range(2)]
    with torch.no_grad():
        for denoiser in denoisers:  # random LayerNorm affines, so the folding is exercised
            for name, parameter in denoiser.named_parameters():
                if parameter.dim() == 1:
                    parameter.copy_(torch.randn_like(parameter) + (1.0 if name.endswith("weight") else 0.0))
    generator = torch.Generator().manual_seed(1)
    condition = 2.0 + torch.randn(2, 150, 24, generator=generator)
    x_t = torch.randn(2, 150, 24, generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        prepared = DenoiserStack(denoisers).prepare(condition)
        return torch.stack([prepared(x_t, t).float() for t in (0, 9, 30)])


@needs_library
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("bf16", 3e-2)])
def test_the_prepared_denoiser_predicts_the_same_noise_with_and_without_the_compiled_pass(monkeypatch, precision,
                                                                                           tolerance):
    compiled = stacked_chain_noise(monkeypatch, True, precision)
    plain = stacked_chain_noise(monkeypatch, False, precision)
    scale = float(plain.abs().max())
    torch.testing.assert_close(compiled, plain, rtol=tolerance, atol=tolerance * scale)


def layer_norm_input_by_hand(x: list[float], tau: list[float], c: list[float]) -> tuple[list[float], float]:
    """[x - m_x, m_x - mu, m_tau - mu, m_c - mu] and 1 / sqrt(var + eps) of the row z = [x, tau, c], in plain Python."""
    z = x + tau + c
    mu = sum(z) / len(z)
    variance = sum((v - mu) ** 2 for v in z) / len(z)
    means = [sum(part) / len(part) for part in (x, tau, c)]
    return [v - means[0] for v in x] + [m - mu for m in means], 1 / math.sqrt(variance + 1e-5)


@needs_library
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_first_matmuls_input_row_equals_the_hand_computation(dtype):
    generator = torch.Generator().manual_seed(3)
    levels, rows, width = 2, 3, 5
    x = torch.randn(levels, rows, width, generator=generator) + 1.5
    tau = torch.randn(levels, 1, width, generator=generator) - 0.5
    condition = torch.randn(levels, rows, width, generator=generator) * 2
    statistics = [(part.mean(-1, keepdim=True), (part - part.mean(-1, keepdim=True)).square().sum(-1, keepdim=True))
                  for part in (tau, condition)]
    inputs = torch.full((levels, rows, width + 4), 7.0, dtype=dtype)
    scale = native.denoiser_inputs_(inputs, x, *statistics[0], *statistics[1], 1e-5)
    assert torch.equal(inputs[..., -1], torch.full((levels, rows), 7.0, dtype=dtype))  # the constant column untouched
    for level in range(levels):
        for row in range(rows):
            expected, expected_scale = layer_norm_input_by_hand(x[level, row].tolist(), tau[level, 0].tolist(),
                                                                condition[level, row].tolist())
            tolerance = 1e-5 if dtype == torch.float32 else 1e-2
            assert inputs[level, row, :-1].float().tolist() == pytest.approx(expected, rel=tolerance, abs=tolerance)
            assert float(scale[level, row]) == pytest.approx(expected_scale, rel=1e-5)


@needs_library
def test_the_input_pass_does_not_depend_on_the_thread_count():
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(2, 500, 30, generator=generator)
    tau_mean, tau_m2 = torch.randn(2, 1, 1, generator=generator), torch.rand(2, 1, 1, generator=generator)
    c_mean, c_m2 = torch.randn(2, 500, 1, generator=generator), torch.rand(2, 500, 1, generator=generator)
    threads, outputs = torch.get_num_threads(), []
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            inputs = torch.zeros(2, 500, 34, dtype=torch.bfloat16)
            outputs.append((native.denoiser_inputs_(inputs, x, tau_mean, tau_m2, c_mean, c_m2, 1e-5), inputs))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
