"""Configs for tests that build a stage's settings by hand.

The library has no defaults in code (params.yaml is the one source of every value a stage uses). Tests that
exercise one function on tiny data still need a whole section: these are written out here once, explicitly,
and each test changes only what it is about (`pretrain_config(batch_size=8)`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from dhns.config import (DataConfig, DiffusionConfig, EvaluateConfig, FeaturesConfig, HardnessLevel, ModelConfig,
                         PretrainConfig, ReverseChain, TrainConfig)

DATA: dict[str, Any] = dict(dataset="MKG-Y", drop_leaked=True, valid_from_train=3000, valid_file_min=1000, valid_seed=0)
FEATURES: dict[str, Any] = dict(text_encoder="minilm", text_batch_size=128, text_max_length=64, image_backend="clip",
                                image_model="ViT-B-32", image_pretrained="", image_batch_size=32, import_dir="")
MODEL: dict[str, Any] = dict(name="transe", embedding_dim=200, margin=9.0, use_features=True)
PRETRAIN: dict[str, Any] = dict(
    sampler="self_adversarial", corruption="", weighting="", cache="", cache_size=50, cache_pool=50,
    cache_refresh="importance", num_negatives=64, adversarial_temperature=1.0,
    batch_size=1024, kgc_lr=0.005, regularization=0.0, regularizer="l2", num_epochs=50, eval_every=5, patience=3, min_epochs=0,
    lr_schedule="none", lr_decay_factor=0.5, lr_decay_patience=1,
    eval_batch_size=256, max_grad_norm=0.0, checkpoint_every=1, num_processes=1, precision="fp32", optimizer="adam",
    row_adagrad_lr=0.1)
LEVELS = (HardnessLevel(0, 0.0, 0.1), HardnessLevel(5, 0.5, 0.3), HardnessLevel(6, 1.0, 0.5),
          HardnessLevel(12, 1.0, 0.7), HardnessLevel(25, 0.5, 0.9))  # the reference's, T = 50
TRAIN: dict[str, Any] = PRETRAIN | dict(
    protocol="finetune", sampler="dhns", generated_negatives="", num_epochs=5, eval_every=1, patience=2,
    kgc_lr=0.001, hard_loss_weight=0.01, hard_loss="reference", distmult_hard_margin=0.0, hardness_levels=LEVELS,
    joint_generator=False, generator_lr=0.001, diffusion_loss="l1", chain_stride=0, chain_eta=1.0)
DIFFUSION: dict[str, Any] = dict(
    num_diffusion_steps=50, beta_start=1e-4, beta_end=0.02, loss="l1", hidden_multiplier=4, num_epochs=20,
    batch_size=1024, generator_lr=0.001, report_steps=(0, 5, 10, 25, 50), report_triples=500,
    report_chains=(ReverseChain(1, 1.0), ReverseChain(0, 1.0)), max_grad_norm=0.0, checkpoint_every=1,
    precision="fp32")
EVALUATE: dict[str, Any] = dict(batch_size=256, tie_policy="realistic")


def data_config(**changes: Any) -> DataConfig:
    return DataConfig(**(DATA | changes))


def features_config(**changes: Any) -> FeaturesConfig:
    return FeaturesConfig(**(FEATURES | changes))


def model_config(**changes: Any) -> ModelConfig:
    return ModelConfig(**(MODEL | changes))


def pretrain_config(**changes: Any) -> PretrainConfig:
    return PretrainConfig(**(PRETRAIN | changes))


def train_config(**changes: Any) -> TrainConfig:
    return TrainConfig(**(TRAIN | changes))


def diffusion_config(**changes: Any) -> DiffusionConfig:
    return DiffusionConfig(**(DIFFUSION | changes))


def evaluate_config(**changes: Any) -> EvaluateConfig:
    return EvaluateConfig(**(EVALUATE | changes))


REPO = Path(__file__).resolve().parents[1]


def repo_raw() -> dict[str, Any]:
    """The repository's params.yaml as YAML data (a complete file to change one value of)."""
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def deep_merge(base: Any, changes: Any) -> Any:
    """`base` with `changes` laid over it, mappings merged key by key (anything else replaced)."""
    if not isinstance(base, dict) or not isinstance(changes, dict):
        return copy.deepcopy(changes)
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        merged[key] = deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
    return merged


def hard_negatives(generator: Any, levels: Any, hard_loss_weight: float, **changes: Any) -> Any:
    """NTAT's hard-negative term with every setting explicit (a frozen generator on the full chain unless changed)."""
    from dhns.config import FULL_CHAIN
    from dhns.training.ntat import HardNegativeObjective

    settings = dict(joint_generator=False, generator_lr=1e-3, diffusion_loss="l1", hard_loss="reference",
                    distmult_hard_margin=0.0, chain=FULL_CHAIN, generator_first=False, precision="fp32")
    return HardNegativeObjective(generator, levels, hard_loss_weight, **(settings | changes))
