"""The settings a benchmark run times: params.yaml's (what `dvc repro` runs), with only the workload the
bench's own flags name changed (scorer, width, batch, negatives, T) and, where given, precision, optimizer
and the reverse chain. No setting comes from a default in code."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from dhns.config import DiffusionConfig, HardnessLevel, Params, PretrainConfig, TrainConfig, load_params
from dhns.bench.config import BenchConfig

Section = TypeVar("Section", PretrainConfig, TrainConfig)


def bench_params(config: BenchConfig) -> Params:
    """The params file as the stages would read it for the bench's scorer and width (features fused where the
    bench has stand-in modalities)."""
    overrides = {"model.name": config.model, "model.embedding_dim": config.dim,
                 "model.use_features": bool(config.modalities)}
    if config.margin is not None:
        overrides["model.margin"] = config.margin
    return load_params(config.params, overrides=overrides)


def _kgc_settings(config: BenchConfig, section: Section) -> Section:
    changed: dict = {"num_negatives": config.num_negatives, "batch_size": config.batch_size}
    if config.optimizer is not None:
        changed["optimizer"] = config.optimizer
    if config.precision is not None:
        changed["precision"] = config.precision
    return dataclasses.replace(section, **changed)


def pretrain_settings(config: BenchConfig, params: Params) -> PretrainConfig:
    return _kgc_settings(config, params.pretrain)


def hardness_levels_for(num_steps: int, levels: tuple[HardnessLevel, ...]) -> tuple[HardnessLevel, ...]:
    """params' levels (the reference's steps [0, T/10, T/8, T/4, T/2] for T = 50) moved to the same fractions of T."""
    if len(levels) != 5:  # not the reference's five: keep the steps, clipped to T
        return tuple(dataclasses.replace(level, step=min(level.step, num_steps)) for level in levels)
    steps = (0, num_steps // 10, num_steps // 8, num_steps // 4, num_steps // 2)
    return tuple(dataclasses.replace(level, step=step) for level, step in zip(levels, steps))


def dhns_settings(config: BenchConfig, params: Params) -> TrainConfig:
    """The train section with generated negatives (dhns on its own sides if params' sampler has none)."""
    train = _kgc_settings(config, params.train)
    if not train.negatives.uses_generator:
        train = dataclasses.replace(train, generated_negatives="dhns")
    chain = {key: value for key, value in (("chain_stride", config.chain_stride), ("chain_eta", config.chain_eta))
             if value is not None}
    return dataclasses.replace(train, hardness_levels=hardness_levels_for(config.diffusion_steps,
                                                                          train.hardness_levels), **chain)


def classic_settings(dhns: TrainConfig) -> TrainConfig:
    """The same train stage without generated negatives: what a DHNS step costs beyond its own base."""
    return dataclasses.replace(dhns, generated_negatives="none")


def cache_settings(dhns: TrainConfig) -> TrainConfig:
    """The same train stage with NSCaching's cache instead of generated negatives (params' N1, N2 and refresh rule):
    real hard negatives, beside the classic and the DHNS step."""
    return dataclasses.replace(dhns, sampler="nscaching", corruption=dhns.negatives.corruption, weighting="",
                               generated_negatives="", cache="")


def joint_settings(dhns: TrainConfig) -> TrainConfig:
    """The same DHNS step under the paper's protocol: the generator takes its own training step on each batch
    before the KGC step (what a joint cell pays per batch beyond a fine-tune one)."""
    return dataclasses.replace(dhns, protocol="joint")


def diffusion_settings(config: BenchConfig, params: Params) -> DiffusionConfig:
    changed: dict = {"num_diffusion_steps": config.diffusion_steps, "batch_size": config.batch_size}
    if config.precision is not None:
        changed["precision"] = config.precision
    report_steps = tuple(step for step in params.diffusion.report_steps if step <= config.diffusion_steps)
    return dataclasses.replace(params.diffusion, report_steps=report_steps or (0,), **changed)
