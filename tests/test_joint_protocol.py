"""train.protocol: joint (the paper's protocol): its settings, and the generator trained ahead of each KGC step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from configs import hard_negatives, train_config
from dhns.training.objective import objective_for
from dhns.config import HardnessLevel, Params, TrainConfig, apply_scorer_settings, from_mapping
from dhns.evaluation import build_filter_index
from dhns.sampling import make_sampler
from dhns.training.kgc import train_kgc
from dhns.training.ntat import build_train_objective
from test_compare import raw_params
from test_ntat import tiny_setup

REPO = Path(__file__).resolve().parents[1]


def resolved(model: str = "transe", **train) -> TrainConfig:
    return from_mapping(Params, apply_scorer_settings(raw_params(scorer=model, **train))).train


@pytest.mark.parametrize("model", ["transe", "rotate", "distmult"])
def test_the_switch_alone_selects_the_joint_settings_of_the_scorer(model):
    finetune, joint = resolved(model=model), resolved(model=model, protocol="joint")
    assert (finetune.protocol, finetune.kgc_lr, finetune.num_epochs, finetune.eval_every) == ("finetune", 0.001, 15, 1)
    assert (joint.protocol, joint.kgc_lr, joint.num_epochs, joint.eval_every) == ("joint", 0.005, 400, 5)
    # mu per form under this protocol, chosen on validation (docs/tuning/MKG-Y/<scorer>-joint.jsonl); the
    # fine-tune protocol's are not used
    reference_mu, per_view_mu = {"transe": (10.0, 0.01), "rotate": (0.001, 1.0), "distmult": (0.1, 0.01)}[model]
    assert joint.hard_loss_weight == reference_mu
    assert resolved(model=model, protocol="joint", hard_loss="per_view").hard_loss_weight == per_view_mu
    if model == "distmult":  # pretraining's regulariser comes with the protocol
        assert (joint.regularizer, joint.regularization, joint.adversarial_temperature) == ("n3", 0.01, 0.5)


def test_a_setting_given_in_the_train_section_still_wins_under_joint():
    assert resolved(protocol="joint", kgc_lr=0.02).kgc_lr == 0.02
    assert resolved(protocol="joint", hard_loss_weight=0.3).hard_loss_weight == 0.3


def test_bad_protocols_and_joint_blocks_are_refused_by_name():
    with pytest.raises(ValueError, match="train.protocol"):
        resolved(protocol="from_scratch")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["scorers"]["transe"]["train"]["joint"]["protocol"] = "finetune"
    with pytest.raises(ValueError, match="scorers.transe.train.joint"):
        apply_scorer_settings(raw)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["scorers"]["transe"]["train"]["joint"]["kgc_lr"] = -1.0
    with pytest.raises(ValueError, match="scorers.transe.train.joint.kgc_lr"):
        apply_scorer_settings(raw)


def test_the_joint_protocol_builds_an_objective_that_trains_the_generator_first():
    model, generator, triples, num_entities = tiny_setup()
    config = train_config(protocol="joint", sampler="dhns", num_negatives=3, batch_size=5, num_epochs=2, eval_every=2,
                         patience=0, hardness_levels=(HardnessLevel(step=2, weight=1.0, margin=0.5),))
    objective = build_train_objective(config, triples, num_entities, 2, generator).extra
    assert objective.joint_generator and objective.generator_first
    finetune = build_train_objective(train_config(hardness_levels=config.hardness_levels), triples, num_entities, 2,
                                     generator).extra
    assert not finetune.joint_generator and not finetune.generator_first


def test_each_batch_updates_the_generator_before_generating_its_negatives():
    model, generator, triples, num_entities = tiny_setup()
    levels = (HardnessLevel(step=2, weight=1.0, margin=0.5),)
    config = train_config(protocol="joint", sampler="dhns", num_negatives=3, batch_size=5, num_epochs=2, eval_every=2,
                         patience=0, hardness_levels=levels, hard_loss_weight=0.5)
    objective = hard_negatives(generator, levels, 0.5, joint_generator=True, generator_lr=1e-2, generator_first=True)
    events: list[str] = []
    step, generate = objective._generator_step, objective.generate
    objective._generator_step = lambda *args: (events.append("generator step"), step(*args))[1]
    objective.generate = lambda *args: (events.append("generate"), generate(*args))[1]
    sampler = make_sampler(config.negatives.corruption, triples, num_entities, 2, config.num_negatives)
    train_kgc(model, triples, triples, build_filter_index(triples, num_entities), objective_for(config, sampler, objective), config)
    batches = 2 * math.ceil(len(triples) / config.batch_size)
    assert events == ["generator step", "generate"] * batches
    assert objective.generator_steps == batches


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_joint_generator_step_runs_in_the_train_stages_precision(monkeypatch, precision):
    # train_step calls the generator's step outside its own precision scope: the objective must pass train.precision
    import dhns.training.ntat as ntat

    model, generator, triples, num_entities = tiny_setup()
    config = train_config(protocol="joint", sampler="dhns", num_negatives=3, batch_size=5, precision=precision,
                          hardness_levels=(HardnessLevel(step=2, weight=1.0, margin=0.5),))
    objective = build_train_objective(config, triples, num_entities, 2, generator).extra
    seen: list[str] = []
    monkeypatch.setattr(ntat, "generator_step", lambda *args, precision, **kwargs: seen.append(precision))
    objective.before_step(model, triples[:5], torch.Generator().manual_seed(0))
    assert seen == [precision]
