"""NTAT: the hardness-adaptive loss by hand for every scorer, and the gradient/optimizer boundaries."""

from __future__ import annotations

import cmath
import math

import pytest
import torch

from dhns.config import HardnessLevel, ModelConfig, TrainConfig
from dhns.diffusion.generator import build_generator
from dhns.evaluation import build_filter_index
from dhns.models.kgc import KGCModel
from dhns.ntat import HardNegativeObjective, hardness_adaptive_loss
from dhns.sampling import make_sampler
from dhns.training import train_kgc


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def score_by_hand(name: str, h: list[float], r: list[float], t: list[float], gamma: float) -> float:
    if name == "transe":
        return gamma - sum(abs(a + b - c) for a, b, c in zip(h, r, t))
    if name == "distmult":
        return sum(a * b * c for a, b, c in zip(h, r, t))
    d = len(r)  # rotate: entities [real | imag], relations are phases
    return gamma - sum(
        abs(complex(h[i], h[d + i]) * cmath.exp(1j * r[i]) - complex(t[i], t[d + i])) for i in range(d)
    )


@pytest.mark.parametrize("name", ["transe", "distmult", "rotate"])
def test_hardness_adaptive_loss_matches_hand_computation(name):
    torch.manual_seed(0)
    gamma = 2.0
    model = KGCModel(ModelConfig(name=name, embedding_dim=2, margin=gamma), num_entities=4, num_relations=2)
    width = model.interaction.entity_width
    positives = torch.tensor([[0, 1, 2], [3, 0, 1]])
    fake = {k: {side: torch.randn(2, width) for side in ("head", "tail")} for k in (3, 7)}
    generated = {"structural": {side: {k: fake[k][side] for k in fake} for side in ("head", "tail")}}
    levels = [HardnessLevel(step=3, weight=0.5, margin=0.2), HardnessLevel(step=7, weight=1.5, margin=0.8),
              HardnessLevel(step=9, weight=0.0, margin=1.0)]  # weight 0: never read (step 9 not generated)
    loss = hardness_adaptive_loss(model, positives, generated, levels, gamma)

    entity = model.entities.structural.weight.tolist()
    relation = model.relations.weight.tolist()
    expected = 0.0
    for level in levels[:2]:
        fake_head, fake_tail = fake[level.step]["head"].tolist(), fake[level.step]["tail"].tolist()
        for kind in range(3):
            terms = []
            for row, (h, r, t) in enumerate(positives.tolist()):
                head = fake_head[row] if kind in (1, 2) else entity[h]
                tail = fake_tail[row] if kind in (0, 2) else entity[t]
                s = score_by_hand(name, head, relation[r], tail, gamma)
                terms.append(-log_sigmoid(-(s + level.margin * gamma)))
            expected += level.weight * sum(terms) / len(terms)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_rows_without_a_modality_are_left_out_of_its_level():
    torch.manual_seed(1)
    present = torch.tensor([True, False, True, True])
    features = {"text": (torch.randn(4, 3) * present[:, None], present)}
    model = KGCModel(ModelConfig(name="transe", embedding_dim=2, margin=1.0), 4, 1, features)
    positives = torch.tensor([[0, 0, 2], [1, 0, 3]])  # entity 1 has no text
    fake = {side: {0: torch.randn(2, 2)} for side in ("head", "tail")}
    level = [HardnessLevel(step=0, weight=1.0, margin=0.5)]
    full = hardness_adaptive_loss(model, positives, {"text": fake}, level, 1.0)
    first_row = hardness_adaptive_loss(model, positives[:1], {"text": {s: {0: v[0][:1]} for s, v in fake.items()}},
                                       level, 1.0)
    torch.testing.assert_close(full, first_row)


def tiny_setup():
    torch.manual_seed(0)
    num_sources, num_relations = 8, 2
    num_entities = num_sources * (1 + num_relations)
    triples = torch.tensor([[s, r, num_sources * (r + 1) + s] for r in range(num_relations) for s in range(num_sources)])
    model = KGCModel(ModelConfig(name="distmult", embedding_dim=4, margin=1.0), num_entities, num_relations)
    generator = build_generator(model, num_steps=6, beta_start=1e-4, beta_end=0.02)
    return model, generator, triples, num_entities


@pytest.mark.parametrize("joint", [False, True])
def test_generator_steps_once_per_batch_only_when_joint(joint):
    model, generator, triples, num_entities = tiny_setup()
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    levels = (HardnessLevel(step=2, weight=1.0, margin=0.5),)
    config = TrainConfig(sampler="dhns", num_negatives=3, batch_size=5, num_epochs=2, eval_every=2, patience=0,
                         hardness_levels=levels, hard_loss_weight=0.5, joint_generator=joint)
    objective = HardNegativeObjective(generator, levels, config.hard_loss_weight, joint, 1e-2)
    sampler = make_sampler(config.sampler, triples, num_entities, 2, config.num_negatives)
    train_kgc(model, triples, triples, build_filter_index(triples, num_entities), sampler, config, extra=objective)
    batches_per_epoch = math.ceil(len(triples) / config.batch_size)
    assert objective.generator_steps == (2 * batches_per_epoch if joint else 0)
    changed = any(not torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert changed == joint


def test_hard_negative_steps_must_exist_in_the_generator():
    _, generator, _, _ = tiny_setup()
    with pytest.raises(ValueError, match="exceeds the generator's 6 diffusion steps"):
        HardNegativeObjective(generator, [HardnessLevel(step=25, weight=1.0, margin=0.5)], 0.01)
