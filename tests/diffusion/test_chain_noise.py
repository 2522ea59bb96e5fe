"""The reverse chain's counter-based normals: Philox by its published answers, Box-Muller by hand, the compiled
loop against the PyTorch form, thread-count independence, the distribution, and seeding."""

from __future__ import annotations

import math
import struct

import pytest
import torch

from dhns import native
from dhns.diffusion.noise import ChainNoise, box_muller, philox, standard_normals

MASK = 0xFFFFFFFF
# Random123's tests/kat_vectors, the three "philox4x32 10" lines: counter (4 words), key (2 words), result (4 words)
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK,) * 4, (MASK, MASK), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
needs_native = pytest.mark.skipif(not native.available(), reason="no C compiler: only the PyTorch form exists")


def float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def philox_by_hand(counter: tuple[int, ...], key: tuple[int, int]) -> tuple[int, ...]:
    """Philox4x32-10 in Python integers, from the paper's round: (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1,
    lo(M0 c0)), the key bumped by the Weyl constants after each round."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK, (p0 >> 32) ^ c3 ^ k1, p0 & MASK
        k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
    return c0, c1, c2, c3


def test_philox_reproduces_the_published_answers_by_hand_in_pytorch_and_compiled():
    counters = torch.tensor([counter for counter, _, _ in KNOWN_ANSWERS], dtype=torch.int64)
    keys = torch.tensor([key for _, key, _ in KNOWN_ANSWERS], dtype=torch.int64)
    for (counter, key, answer), row in zip(KNOWN_ANSWERS, range(3)):
        assert philox_by_hand(counter, key) == answer
        assert tuple(philox(counters[row : row + 1], key[0], key[1])[0].tolist()) == answer
    if native.available():
        assert [tuple(row) for row in native.philox(counters, keys).tolist()] == [answer for _, _, answer in KNOWN_ANSWERS]


def test_philox_agrees_with_the_hand_form_on_random_counters_and_keys():
    generator = torch.Generator().manual_seed(0)
    counters = torch.randint(0, 2**32, (64, 4), generator=generator)
    key = torch.randint(0, 2**32, (2,), generator=generator).tolist()
    ours = philox(counters, key[0], key[1]).tolist()
    assert ours == [list(philox_by_hand(tuple(row), tuple(key))) for row in counters.tolist()]


def test_box_muller_matches_the_formula_in_double_precision():
    words = torch.tensor([0, 1, 2**31, 2**32 - 1, 123456789, 3 * 2**30 + 7, 2**30, 2**29, 987654321], dtype=torch.int64)
    angles = torch.flip(words, dims=[0])
    first, second = box_muller(words, angles)
    for radius_word, angle_word, z0, z1 in zip(words.tolist(), angles.tolist(), first.tolist(), second.tolist()):
        u = float32(float32(radius_word) * 2.0**-32 + 2.0**-33)  # (0, 1], as the documented float32 arithmetic rounds it
        r = math.sqrt(-2.0 * math.log(u))
        theta = 2.0 * math.pi * angle_word / 2.0**32
        assert z0 == pytest.approx(r * math.cos(theta), abs=4e-6 * max(1.0, r))
        assert z1 == pytest.approx(r * math.sin(theta), abs=4e-6 * max(1.0, r))


@needs_native
def test_the_compiled_loop_gives_the_pytorch_forms_numbers_and_jump():
    count = 100_003  # not a multiple of 4: the last counter is used in part
    key = 0x0123456789ABCDEF
    reference = standard_normals(key, 3, count)
    like = torch.empty(count)
    torch.testing.assert_close(native.normal_jump(key, 3, like, 1.0), reference, rtol=0, atol=0)
    x, e = torch.randn(count), torch.randn(count)
    expected = reference * 0.3 + x * 0.9 + e * -0.2  # the loop's order: sigma z, then + a x, then + b e
    torch.testing.assert_close(native.normal_jump(key, 3, like, 0.3, x, 0.9, e, -0.2), expected, rtol=0, atol=0)


@needs_native
def test_the_compiled_normals_do_not_depend_on_the_thread_count():
    like, previous = torch.empty(4, 50_000), torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(ChainNoise(torch.Generator().manual_seed(1), torch.device("cpu")).normal(like))
    finally:
        torch.set_num_threads(previous)
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=0, atol=0)


def test_the_normals_have_the_standard_normal_distribution():
    n = 1_000_000
    z = standard_normals(2024, 0, n).double()
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert abs(float(z.var()) - 1.0) < 5 * math.sqrt(2 / n)
    assert abs(float((z**4).mean()) - 3.0) < 5 * math.sqrt(96 / n)  # kurtosis of a normal: 3, variance of z^4: 96
    # Kolmogorov-Smirnov distance to the normal CDF: below 1.63 / sqrt(n) with probability 0.99
    ordered = z.sort().values
    cdf = 0.5 * (1 + torch.erf(ordered / math.sqrt(2)))
    ranks = torch.arange(1, n + 1, dtype=torch.float64) / n
    assert float(torch.maximum(ranks - cdf, cdf - (ranks - 1 / n)).max()) < 1.63 / math.sqrt(n)
    beyond_three = float((z.abs() > 3).double().mean())  # 0.0027 for a normal
    assert abs(beyond_three - 0.0026998) < 5 * math.sqrt(0.0027 / n)
    assert abs(float((z[1:] * z[:-1]).mean())) < 5 / math.sqrt(n)  # neighbours uncorrelated
    other_draw = standard_normals(2024, 1, n).double()
    assert abs(float((z * other_draw).mean())) < 5 / math.sqrt(n)  # draws of one chain uncorrelated


def test_a_seeded_generator_fixes_the_chain_and_successive_draws_differ():
    like = torch.empty(3, 10)

    def draws(seed: int) -> list[torch.Tensor]:
        noise = ChainNoise(torch.Generator().manual_seed(seed), torch.device("cpu"))
        return [noise.normal(like), noise.normal(like)]

    first, again, other = draws(5), draws(5), draws(6)
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(first[0], other[0])
    generator = torch.Generator().manual_seed(5)
    keys = [ChainNoise(generator, torch.device("cpu")).key for _ in range(2)]
    assert keys[0] != keys[1]  # the generator advances: the next chain gets fresh noise


def test_other_dtypes_take_the_pytorch_form_with_the_same_values():
    noise64 = ChainNoise(torch.Generator().manual_seed(2), torch.device("cpu")).normal(torch.empty(7, 5, dtype=torch.float64))
    noise32 = ChainNoise(torch.Generator().manual_seed(2), torch.device("cpu")).normal(torch.empty(7, 5))
    assert noise64.dtype == torch.float64
    torch.testing.assert_close(noise64, noise32.double(), rtol=0, atol=0)
