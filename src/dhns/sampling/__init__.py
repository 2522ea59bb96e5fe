"""Negative samplers: which entity replaces which side of each positive triple."""

from dhns.sampling.cache import CacheSampler
from dhns.sampling.negatives import (
    SAMPLERS,
    BernoulliSampler,
    Negatives,
    NegativeSampler,
    UniformSampler,
    make_sampler,
)

__all__ = ["CacheSampler", "SAMPLERS", "BernoulliSampler", "Negatives", "NegativeSampler", "UniformSampler",
           "make_sampler"]
