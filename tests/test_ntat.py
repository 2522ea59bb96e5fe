"""NTAT: both hard-loss forms by hand from the design notes' formulas, gradients, and optimizer boundaries.

Expected values are computed in plain Python (floats, lists, complex numbers) from the model's raw
parameters, including the attention fusion, so a test fails if the code's formula drifts from the notes.
"""

from __future__ import annotations

import cmath
import math

import pytest
import torch

from configs import hard_negatives, model_config, train_config
from dhns.training.objective import objective_for
from dhns.config import HardnessLevel
from dhns.diffusion.generator import build_generator
from dhns.evaluation import build_filter_index
from dhns.models.kgc import KGCModel
from dhns.training.ntat import per_view_hard_loss, reference_hard_loss
from dhns.sampling import make_sampler
from dhns.training.kgc import train_kgc


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def score_by_hand(name: str, h: list[float], r: list[float], t: list[float], gamma: float) -> float:
    if name == "transe":
        return gamma - sum(abs(a + b - c) for a, b, c in zip(h, r, t))
    if name == "distmult":
        return sum(a * b * c for a, b, c in zip(h, r, t))
    d = len(r)  # rotate: entities [real | imag], relations are phases
    return gamma - sum(
        abs(complex(h[i], h[d + i]) * cmath.exp(1j * r[i]) - complex(t[i], t[d + i])) for i in range(d)
    )


def fuse_by_hand(views: list[list[float]], present: list[bool], attention: list[float]) -> list[float]:
    """sum_m a_m e_m, a = softmax over present views of w . tanh(e_m) (the design notes' fusion)."""
    logits = [sum(w * math.tanh(x) for w, x in zip(attention, view)) for view in views]
    top = max(logit for logit, keep in zip(logits, present) if keep)
    exps = [math.exp(logit - top) if keep else 0.0 for logit, keep in zip(logits, present)]
    weights = [e / sum(exps) for e in exps]
    return [sum(a * view[j] for a, view in zip(weights, views)) for j in range(len(views[0]))]


def one_dim_transe(gamma: float = 9.0) -> KGCModel:
    """TransE of width 1 with h = 0, r = 0, t = 6 (entities 0 and 1, relation 0): dist(h, r, t) = 6."""
    model = KGCModel(model_config(name="transe", embedding_dim=1, margin=gamma), num_entities=2, num_relations=1)
    with torch.no_grad():
        model.entities.structural.weight.copy_(torch.tensor([[0.0], [6.0]]))
        model.relations.weight.zero_()
    return model


def structural_only(head: float, tail: float, step: int) -> dict:
    return {"structural": {"head": {step: torch.tensor([[head]])}, "tail": {step: torch.tensor([[tail]])}}}


def test_the_design_notes_worked_number():
    """TransE, gamma 9, every distance 6, m 0.3: n = 2.7 - 6 = -3.3, -log s(3.3) = 0.0362, term 0.0424."""
    model = one_dim_transe()
    positives = torch.tensor([[0, 0, 1]])
    # h~ = 12, t~ = 6: dist(h~, r, t) = dist(h, r, t~) = dist(h~, r, t~) = 6, like the positive
    generated = structural_only(12.0, 6.0, step=5)
    loss = reference_hard_loss(model, positives, generated, [HardnessLevel(5, 1.0, 0.3)], 9.0)
    negative_part = math.log1p(math.exp(-3.3))
    positive_part = math.log1p(math.exp(-3.0))
    assert negative_part == pytest.approx(0.0362, abs=5e-5)
    assert loss.item() == pytest.approx(0.0424, abs=5e-5)
    assert loss.item() == pytest.approx((positive_part + negative_part) / 2, rel=1e-6)  # 3 kinds / (3 x 1 level)


def test_margin_replaces_gamma_and_is_not_added_to_the_score():
    """The first project form, -log s(-(s + m gamma)), gives 5.70 on the worked case; the reference 0.0424."""
    model = one_dim_transe()
    positives = torch.tensor([[0, 0, 1]])
    generated = structural_only(12.0, 6.0, step=5)
    level = [HardnessLevel(5, 1.0, 0.3)]
    reference = reference_hard_loss(model, positives, generated, level, 9.0).item()
    margin_added = -log_sigmoid(-(3.0 + 0.3 * 9.0))
    assert margin_added == pytest.approx(5.70, abs=5e-3)
    assert reference < 0.05
    assert per_view_hard_loss(model, positives, generated, level, 9.0).item() == pytest.approx(3 * margin_added,
                                                                                               rel=1e-6)


def test_normalisation_counts_only_levels_with_weight():
    """Two levels with weights 0.5 and 1 (and a zero-weight one) divide the weighted sum by 3 x 2."""
    model = one_dim_transe()
    positives = torch.tensor([[0, 0, 1]])
    generated = {"structural": {"head": {2: torch.tensor([[12.0]]), 4: torch.tensor([[3.0]])},
                                "tail": {2: torch.tensor([[6.0]]), 4: torch.tensor([[1.0]])}}}
    levels = [HardnessLevel(2, 0.5, 0.3), HardnessLevel(4, 1.0, 0.7), HardnessLevel(9, 0.0, 0.1)]
    expected = 0.0
    for weight, margin, h_fake, t_fake in ((0.5, 0.3, 12.0, 6.0), (1.0, 0.7, 3.0, 1.0)):
        for h, t in ((h_fake, 6.0), (0.0, t_fake), (h_fake, t_fake)):
            negative = 9.0 - abs(h - t) - (1 - margin) * 9.0
            expected += weight * -(log_sigmoid(3.0) + log_sigmoid(-negative)) / 2
    expected /= 3 * 2
    assert reference_hard_loss(model, positives, generated, levels, 9.0).item() == pytest.approx(expected, rel=1e-6)


def multimodal_model(name: str, gamma: float = 2.0) -> tuple[KGCModel, torch.Tensor]:
    """4 entities, 2-d text features, entity 1 without text, a non-zero attention vector."""
    torch.manual_seed(0)
    present = torch.tensor([True, False, True, True])
    features = {"text": (torch.randn(4, 2) * present[:, None], present)}
    model = KGCModel(model_config(name=name, embedding_dim=2, margin=gamma), 4, 2, features)
    with torch.no_grad():
        model.entities.attention.copy_(torch.randn(model.interaction.entity_width))
        model.entities.projections["text"].bias.copy_(torch.randn(model.interaction.entity_width) * 0.3)
    return model, features["text"][0]


def views_by_hand(model: KGCModel, features: torch.Tensor, entity: int) -> list[list[float]]:
    """[structural, text projection] of one entity, in plain Python."""
    structural = model.entities.structural.weight[entity].tolist()
    weight = model.entities.projections["text"].weight.tolist()
    bias = model.entities.projections["text"].bias.tolist()
    x = features[entity].tolist()
    text = [sum(w * xi for w, xi in zip(row, x)) + b for row, b in zip(weight, bias)]
    return [structural, text]


@pytest.mark.parametrize("name,delta", [("transe", 0.0), ("rotate", 0.0), ("distmult", 0.0), ("distmult", 1.5)])
def test_reference_form_by_hand_for_every_scorer(name, delta):
    """Fused real and generated entities, scorer margins (delta for DistMult), positive in every term."""
    gamma = 2.0
    model, features = multimodal_model(name, gamma)
    width = model.interaction.entity_width
    positives = torch.tensor([[0, 1, 2], [3, 0, 1]])  # entity 1 (no text) is the second row's tail
    torch.manual_seed(3)
    steps = (3, 7)
    generated = {view: {side: {k: torch.randn(2, width) for k in steps} for side in ("head", "tail")}
                 for view in ("structural", "text")}
    levels = [HardnessLevel(3, 0.5, 0.2), HardnessLevel(7, 1.5, 0.8), HardnessLevel(9, 0.0, 1.0)]
    margin = delta if name == "distmult" else gamma
    loss = reference_hard_loss(model, positives, generated, levels, margin)

    attention = model.entities.attention.tolist()
    has_text = [True, False, True, True]
    relation = model.relations.weight.tolist()

    def real(entity: int) -> list[float]:
        return fuse_by_hand(views_by_hand(model, features, entity), [True, has_text[entity]], attention)

    def fake(side: str, step: int, row: int, entity: int) -> list[float]:
        views = [generated[view][side][step][row].tolist() for view in ("structural", "text")]
        return fuse_by_hand(views, [True, has_text[entity]], attention)  # masked by the true entity's views

    expected = 0.0
    for level in levels[:2]:
        for kind in ("head", "tail", "both"):
            terms = []
            for row, (h, r, t) in enumerate(positives.tolist()):
                positive = score_by_hand(name, real(h), relation[r], real(t), gamma)
                head = fake("head", level.step, row, h) if kind in ("head", "both") else real(h)
                tail = fake("tail", level.step, row, t) if kind in ("tail", "both") else real(t)
                base = score_by_hand(name, head, relation[r], tail, gamma if name != "distmult" else 0.0)
                negative = base - (1 - level.margin) * margin
                terms.append(-(log_sigmoid(positive) + log_sigmoid(-negative)) / 2)
            expected += level.weight * sum(terms) / len(terms)
    expected /= 3 * 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["transe", "distmult", "rotate"])
def test_per_view_form_by_hand_for_every_scorer(name):
    """Each semantic level apart, margin added, rows where both ends have the view, unnormalised sum."""
    gamma = 2.0
    model, features = multimodal_model(name, gamma)
    width = model.interaction.entity_width
    positives = torch.tensor([[0, 1, 2], [3, 0, 1]])
    torch.manual_seed(4)
    generated = {view: {side: {5: torch.randn(2, width)} for side in ("head", "tail")}
                 for view in ("structural", "text")}
    level = HardnessLevel(5, 0.5, 0.4)
    margin = 0.0 if name == "distmult" else gamma  # the scorer's hard margin: delta (0 here) for DistMult
    loss = per_view_hard_loss(model, positives, generated, [level], margin)

    relation = model.relations.weight.tolist()
    has_text = [True, False, True, True]
    expected = 0.0
    for index, view in enumerate(("structural", "text")):
        for kind in ("head", "tail", "both"):
            terms = []
            for row, (h, r, t) in enumerate(positives.tolist()):
                if view == "text" and not (has_text[h] and has_text[t]):
                    continue
                head = generated[view]["head"][5][row].tolist() if kind != "tail" else views_by_hand(model, features, h)[index]
                tail = generated[view]["tail"][5][row].tolist() if kind != "head" else views_by_hand(model, features, t)[index]
                score = score_by_hand(name, head, relation[r], tail, gamma if name != "distmult" else 0.0)
                terms.append(-log_sigmoid(-(score + level.margin * margin)))
            expected += level.weight * sum(terms) / len(terms)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_reference_gradient_reaches_attention_and_projections():
    model, _ = multimodal_model("transe")
    positives = torch.tensor([[0, 1, 2], [3, 0, 1]])
    generated = {view: {side: {5: torch.randn(2, 2)} for side in ("head", "tail")} for view in ("structural", "text")}
    reference_hard_loss(model, positives, generated, [HardnessLevel(5, 1.0, 0.5)], 2.0).backward()
    assert model.entities.attention.grad.abs().sum() > 0
    assert model.entities.projections["text"].weight.grad.abs().sum() > 0
    assert model.entities.structural.weight.grad.abs().sum() > 0

    # the per-view form never fuses, so the attention gets nothing from it: the difference the issue names
    model.zero_grad(set_to_none=True)
    per_view_hard_loss(model, positives, generated, [HardnessLevel(5, 1.0, 0.5)], 2.0).backward()
    assert model.entities.attention.grad is None


def test_generated_views_of_an_entity_lacking_a_modality_are_ignored():
    """The true tail has no text: its generated text view must not change the fused negative."""
    model, _ = multimodal_model("transe")
    positives = torch.tensor([[0, 0, 1]])  # entity 1 lacks text
    generated = {view: {side: {5: torch.randn(1, 2)} for side in ("head", "tail")} for view in ("structural", "text")}
    level = [HardnessLevel(5, 1.0, 0.5)]
    before = reference_hard_loss(model, positives, generated, level, 2.0)
    generated["text"]["tail"][5] = generated["text"]["tail"][5] + 100.0
    after = reference_hard_loss(model, positives, generated, level, 2.0)
    torch.testing.assert_close(before, after)


@pytest.mark.parametrize("form", ["reference", "per_view"])
def test_ntat_loss_is_finite_when_no_row_has_the_modality(form):
    """A batch of entities that all lack text: finite loss and gradient, through the real generator."""
    torch.manual_seed(0)
    present = torch.tensor([True, True, False, False, False, False])
    features = {"text": (torch.randn(6, 3) * present[:, None], present)}
    model = KGCModel(model_config(name="transe", embedding_dim=4, margin=2.0), 6, 1, features)
    generator = build_generator(model, num_steps=6, beta_start=1e-4, beta_end=0.02)
    objective = hard_negatives(generator, [HardnessLevel(2, 1.0, 0.5)], 0.1, hard_loss=form)
    positives = torch.tensor([[2, 0, 3], [4, 0, 5]])
    loss = objective.loss(model, positives, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def tiny_setup():
    torch.manual_seed(0)
    num_sources, num_relations = 8, 2
    num_entities = num_sources * (1 + num_relations)
    triples = torch.tensor([[s, r, num_sources * (r + 1) + s] for r in range(num_relations) for s in range(num_sources)])
    model = KGCModel(model_config(name="distmult", embedding_dim=4, margin=1.0), num_entities, num_relations)
    generator = build_generator(model, num_steps=6, beta_start=1e-4, beta_end=0.02)
    return model, generator, triples, num_entities


@pytest.mark.parametrize("joint", [False, True])
def test_generator_steps_once_per_batch_only_when_joint(joint):
    model, generator, triples, num_entities = tiny_setup()
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    levels = (HardnessLevel(step=2, weight=1.0, margin=0.5),)
    config = train_config(sampler="dhns", num_negatives=3, batch_size=5, num_epochs=2, eval_every=2, patience=0,
                         hardness_levels=levels, hard_loss_weight=0.5, joint_generator=joint)
    objective = hard_negatives(generator, levels, config.hard_loss_weight, joint_generator=joint, generator_lr=1e-2)
    sampler = make_sampler(config.negatives.corruption, triples, num_entities, 2, config.num_negatives)
    train_kgc(model, triples, triples, build_filter_index(triples, num_entities), objective_for(config, sampler, objective), config)
    batches_per_epoch = math.ceil(len(triples) / config.batch_size)
    assert objective.generator_steps == (2 * batches_per_epoch if joint else 0)
    changed = any(not torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert changed == joint


def test_hard_negative_steps_must_exist_in_the_generator():
    _, generator, _, _ = tiny_setup()
    with pytest.raises(ValueError, match="exceeds the generator's 6 diffusion steps"):
        hard_negatives(generator, [HardnessLevel(step=25, weight=1.0, margin=0.5)], 0.01)


def test_objective_uses_delta_for_distmult_and_gamma_otherwise():
    """distmult_hard_margin shifts DistMult's generated scores; model.margin (a TransE quantity) never does."""
    model, generator, triples, _ = tiny_setup()
    levels = [HardnessLevel(step=2, weight=1.0, margin=0.5)]
    losses = []
    for delta in (0.0, 4.0):
        objective = hard_negatives(generator, levels, 1.0, distmult_hard_margin=delta)
        losses.append(objective.loss(model, triples[:4], torch.Generator().manual_seed(0)).item())
    assert losses[1] < losses[0]  # n = f - (1 - m) delta: a larger delta separates generated negatives sooner
    with pytest.raises(ValueError, match="train.hard_loss"):
        hard_negatives(generator, levels, 1.0, hard_loss="margin_added")
