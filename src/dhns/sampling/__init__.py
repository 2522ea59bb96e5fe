"""Negative samplers: which entity replaces which side of each positive triple."""

from dhns.sampling.negatives import (
    SAMPLERS,
    BernoulliSampler,
    Negatives,
    NegativeSampler,
    UniformSampler,
    make_sampler,
)

__all__ = ["SAMPLERS", "BernoulliSampler", "Negatives", "NegativeSampler", "UniformSampler", "make_sampler"]
