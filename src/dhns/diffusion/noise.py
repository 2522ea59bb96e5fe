"""The reverse chain's Gaussian noise, from a counter-based generator: any thread count, same numbers.

PyTorch draws CPU normals from one Mersenne Twister, one number after another: the strided chain's five
(L, 2B, w) draws were about 30 ms of a 0.43 s DHNS step on one thread, and a second thread cannot help.
Here value i of a draw is a function of (key, draw, i) alone: Philox4x32-10 (Salmon et al., SC 2011) turns
the counter (i // 4, draw, 0) and a 64-bit key into four 32-bit words, and Box-Muller turns each pair of
words into two normals. The compiled loop (`dhns.native.normal_jump`) therefore splits the work across
threads and vectorises, and writes the strided jump's sum sigma z + a x + b e in the same pass. The PyTorch
form below computes the same numbers with the same float32 operations, for GPUs and machines without a C
compiler (the two agree bit for bit on the machines tested; `tests/diffusion/test_chain_noise.py`).

A chain takes its key from the caller's `torch.Generator` (two 32-bit draws), so a seeded generator still
fixes every negative, and successive chains get fresh keys.
"""

from __future__ import annotations

import torch

from dhns import native

Tensor = torch.Tensor

MASK = 0xFFFFFFFF
MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)  # Philox4x32's round multipliers
WEYL = (0x9E3779B9, 0xBB67AE85)  # its key schedule's increments
ROUNDS = 10
# float32 constants, written as the shortest decimal of each float so that C and Python read the same value
SQRT2 = 1.4142135
LN2 = 0.6931472
TWO_PI_OVER_2_32 = 1.4629181e-09
ATANH_SERIES = (0.6666667, 0.4, 0.2857143, 0.22222222)  # 2 / (2k + 1), k = 1..4 (2 is the first term)
SINE_SERIES = (-0.16666667, 0.008333334, -0.0001984127, 2.7557319e-06)  # (-1)^k / (2k + 1)!, k = 1..4
COSINE_SERIES = (-0.5, 0.041666668, -0.0013888889, 2.4801588e-05, -2.755732e-07)  # (-1)^k / (2k)!, k = 1..5


class ChainNoise:
    """The normals of one reverse chain: draw d is the d-th call's, keyed once from `generator`."""

    def __init__(self, generator: torch.Generator | None, device: torch.device) -> None:
        words = torch.randint(0, 2**32, (2,), generator=generator, device=device if generator is None
                              else generator.device).tolist()  # one host read per chain, not per step
        self.key = int(words[0]) | int(words[1]) << 32
        self.device = device
        self.draws = 0

    def jump(self, like: Tensor, sigma: float, x: Tensor | None = None, a: float = 0.0, e: Tensor | None = None,
             b: float = 0.0) -> Tensor:
        """sigma z + a x + b e in `like`'s shape and dtype, z this chain's next draw of standard normals."""
        draw, self.draws = self.draws, self.draws + 1
        terms = [t for t in (like, x, e) if t is not None]
        if all(t.dtype == torch.float32 and t.device.type == "cpu" for t in terms) and native.available():
            return native.normal_jump(self.key, draw, like, sigma, x, a, e, b)
        out = standard_normals(self.key, draw, like.numel(), like.device).reshape(like.shape).to(like.dtype) * sigma
        if x is not None:
            out = out + x * a
        if e is not None:
            out = out + e * b
        return out

    def normal(self, like: Tensor) -> Tensor:
        """The next draw of standard normals, shaped like `like`."""
        return self.jump(like, 1.0)


def standard_normals(key: int, draw: int, count: int, device: torch.device | str = "cpu") -> Tensor:
    """(count,) float32: value i of draw `draw` under `key`, in PyTorch (the compiled loop's numbers)."""
    blocks = (count + 3) // 4
    index = torch.arange(blocks, device=device, dtype=torch.int64)
    counters = torch.stack([index & MASK, index >> 32, torch.full_like(index, draw), torch.zeros_like(index)], dim=1)
    words = philox(counters, key & MASK, key >> 32)  # (blocks, 4)
    first, second = box_muller(words[:, 0], words[:, 1])
    third, fourth = box_muller(words[:, 2], words[:, 3])
    return torch.stack([first, second, third, fourth], dim=1).reshape(-1)[:count]


def philox(counters: Tensor, key0: int | Tensor, key1: int | Tensor) -> Tensor:
    """Philox4x32-10 of (n, 4) counters (uint32 values held in int64) -> (n, 4) words.

    The 32 x 32 -> 64-bit products are split in 16-bit halves of the multiplier, so no int64 overflows.
    """
    c0, c1, c2, c3 = counters.unbind(dim=1)
    for _ in range(ROUNDS):
        high0, low0 = _multiply_high_low(MULTIPLIERS[0], c0)
        high1, low1 = _multiply_high_low(MULTIPLIERS[1], c2)
        c0, c1, c2, c3 = high1 ^ c1 ^ key0, low1, high0 ^ c3 ^ key1, low0
        key0, key1 = (key0 + WEYL[0]) & MASK, (key1 + WEYL[1]) & MASK
    return torch.stack([c0, c1, c2, c3], dim=1)


def _multiply_high_low(multiplier: int, value: Tensor) -> tuple[Tensor, Tensor]:
    """(high, low) 32-bit words of multiplier * value, both < 2^32."""
    product_low = value * (multiplier & 0xFFFF)  # < 2^48
    product_high = value * (multiplier >> 16)  # < 2^48
    high = (product_high + (product_low >> 16)) >> 16
    low = (((product_high & 0xFFFF) << 16) + product_low) & MASK
    return high, low


def box_muller(radius_words: Tensor, angle_words: Tensor) -> tuple[Tensor, Tensor]:
    """Two float32 normals per pair of words: r cos(theta), r sin(theta), r = sqrt(-2 log u), u in (0, 1].

    theta = 2 pi k / 2^32 is reduced exactly, in integers, to a quarter turn q and phi in [-pi/4, pi/4); log, sin
    and cos are short series (truncation below 2e-9). Each step is the compiled loop's float32 operation.
    """
    u = radius_words.to(torch.float32) * 2.0**-32 + 2.0**-33
    radius = torch.sqrt(-2.0 * _log_unit(u).double()).float()  # correctly rounded, as C's sqrtf (torch's fp32 sqrt is not)
    quarter = ((angle_words + 0x20000000) & MASK) >> 30
    rest = (angle_words - (quarter << 30)) & MASK
    rest = torch.where(rest >= 2**31, rest - 2**32, rest)  # as a signed 32-bit integer
    phi = rest.to(torch.float32) * TWO_PI_OVER_2_32
    p2 = phi * phi
    sine = phi + phi * p2 * _horner(p2, SINE_SERIES)
    cosine = 1.0 + p2 * _horner(p2, COSINE_SERIES)
    swap = (quarter & 1).bool()
    c, s = torch.where(swap, sine, cosine), torch.where(swap, cosine, sine)
    cos_sign = torch.where((quarter == 1) | (quarter == 2), -1.0, 1.0)
    sin_sign = torch.where(quarter >= 2, -1.0, 1.0)
    return radius * (cos_sign * c), radius * (sin_sign * s)


def _horner(x: Tensor, coefficients: tuple[float, ...]) -> Tensor:
    """c0 + x (c1 + x (c2 + ...)), innermost first, as the C source nests it."""
    total = torch.full_like(x, coefficients[-1])
    for coefficient in reversed(coefficients[:-1]):
        total = coefficient + x * total
    return total


def _log_unit(u: Tensor) -> Tensor:
    """log u for float32 u in (0, 1]: u = m 2^e, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1))."""
    bits = u.view(torch.int32).to(torch.int64)
    exponent = (bits >> 23) - 127
    m = ((bits & 0x007FFFFF) | 0x3F800000).to(torch.int32).view(torch.float32)
    high = m > SQRT2
    m = torch.where(high, m * 0.5, m)
    exponent = exponent + high.to(torch.int64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = s * (2.0 + s2 * _horner(s2, ATANH_SERIES))
    return exponent.to(torch.float32) * LN2 + series
