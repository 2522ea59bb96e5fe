"""DiffHEG over a KGC model: gradient boundaries, hardness ordering on a toy KG, checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from configs import diffusion_config, model_config, pretrain_config
from dhns.training.objective import objective_for
from dhns.config import FULL_CHAIN, STRIDED_CHAIN
from dhns.diffusion.generator import (
    HierarchicalGenerator,
    build_generator,
    level_scales,
    level_views,
    load_generator,
    save_generator,
    side_conditions,
)
from dhns.diffusion.noise import ChainNoise
from dhns.diffusion.report import hardness_report
from dhns.training.diffusion import generator_step, train_generator
from dhns.evaluation import build_filter_index
from dhns.models.kgc import KGCModel
from dhns.sampling import make_sampler
from dhns.training.kgc import train_kgc


def toy_graph(num_sources: int = 16, num_relations: int = 2) -> tuple[torch.Tensor, int]:
    """Each relation maps each source to its own target (learnable by every scorer)."""
    generator = torch.Generator().manual_seed(0)
    num_entities = num_sources * (1 + num_relations)
    ids = torch.randperm(num_entities, generator=generator)
    triples = torch.cat([
        torch.stack([ids[:num_sources], torch.full((num_sources,), r),
                     ids[num_sources * (r + 1): num_sources * (r + 2)]], dim=1)
        for r in range(num_relations)
    ])
    return triples, num_entities


def pretrained_model(name: str, with_text: bool = True) -> tuple[KGCModel, torch.Tensor]:
    torch.manual_seed(0)
    triples, num_entities = toy_graph()
    features = None
    if with_text:
        present = torch.ones(num_entities, dtype=torch.bool)
        present[0] = False  # one entity without text: its level-text rows must be skipped
        features = {"text": (torch.randn(num_entities, 6) * present[:, None], present)}
    model = KGCModel(model_config(name=name, embedding_dim=8, margin=4.0), num_entities, 2, features)
    config = pretrain_config(num_negatives=8, batch_size=32, kgc_lr=0.02, num_epochs=60, eval_every=60, patience=0)
    sampler = make_sampler(config.negatives.corruption, triples, num_entities, 2, config.num_negatives)
    train_kgc(model, triples, triples, build_filter_index(triples, num_entities), objective_for(config, sampler), config)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, triples


@pytest.mark.parametrize("name", ["transe", "distmult", "rotate"])
def test_levels_follow_modalities_and_generator_never_touches_the_kgc_model(name):
    model, triples = pretrained_model(name)
    for parameter in model.parameters():
        parameter.requires_grad_(True)  # even a trainable KGC model must receive no gradient
    model.zero_grad(set_to_none=True)
    generator = build_generator(model, num_steps=10, beta_start=1e-4, beta_end=0.02)
    assert generator.levels == ("structural", "text")
    assert generator.width == model.interaction.entity_width
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    generator_step(generator, model, optimizer, triples, "l1", torch.Generator().manual_seed(0))
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(p.grad is not None for p in generator.parameters())
    out = generator.generate(model, triples[:5], keep_steps=[0, 3, 10], chain=FULL_CHAIN)
    assert set(out) == {"structural", "text"} and set(out["text"]) == {"head", "tail"}
    assert out["structural"]["tail"][0].shape == (5, model.interaction.entity_width)
    assert not out["structural"]["tail"][0].requires_grad


def test_scales_standardise_each_level():
    model, _ = pretrained_model("transe")
    scales = level_scales(model)
    structural = model.entities.structural.weight
    assert scales["structural"] == pytest.approx(float(structural.std()), rel=1e-5)


def test_generated_negatives_order_from_easy_to_hard_on_a_toy_graph():
    model, triples = pretrained_model("transe")
    config = diffusion_config(num_diffusion_steps=50, num_epochs=1000, batch_size=32, generator_lr=5e-3)
    generator = build_generator(model, config.num_diffusion_steps, config.beta_start, config.beta_end)
    history = train_generator(generator, model, triples, config, seed=0)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    index = build_filter_index(triples, model.num_entities)
    for chain in (FULL_CHAIN, STRIDED_CHAIN):  # the strided chain reaches the same levels in 3 calls, not 50
        report = hardness_report(generator, model, triples, index, [0, 5, 25, 50], seed=1, chain=chain)
        for level in ("structural", "text"):
            for side in ("head", "tail"):
                entries = report["levels"][level][side]
                assert entries["easy_to_hard_ordered"], (chain, level, side, entries)
            structural = report["levels"]["structural"][side]
            assert structural["step_0"]["mean_distance"] < 0.7 * structural["step_50"]["mean_distance"], chain


def untrained_model(name: str, with_text: bool) -> tuple[KGCModel, torch.Tensor]:
    """Enough for exactness checks, which need no training."""
    torch.manual_seed(0)
    triples, num_entities = toy_graph()
    present = torch.ones(num_entities, dtype=torch.bool)
    features = {"text": (torch.randn(num_entities, 6), present)} if with_text else None
    return KGCModel(model_config(name=name, embedding_dim=8, margin=4.0), num_entities, 2, features), triples


@pytest.mark.parametrize("with_text", [True, False])
def test_generate_equals_per_level_plain_chains_with_the_documented_noise_order(with_text):
    # All levels run as one (L, 2B, w) chain; replay it level by level with the plain forward and the random
    # numbers in the order `generate` documents. With one level that order is the earlier per-level loop's.
    model, triples = untrained_model("distmult", with_text)
    generator = build_generator(model, num_steps=6, beta_start=1e-4, beta_end=0.02)
    batch, keep_steps = 5, [0, 2, 6]
    out = generator.generate(model, triples[:batch], keep_steps, generator=torch.Generator().manual_seed(4), chain=FULL_CHAIN)
    assert list(out) == list(generator.levels) == (["structural", "text"] if with_text else ["structural"])

    replay = torch.Generator().manual_seed(4)
    diffusion, width = generator.diffusion, generator.width
    heads, tails = level_views(model, triples[:batch, 0]), level_views(model, triples[:batch, 2])
    conditions = []
    for level in generator.levels:
        sides = side_conditions(model, triples[:batch], heads[level], tails[level])
        conditions.append(torch.cat([sides["head"], sides["tail"]]) / generator.scale(level))  # (2B, w)
    draws = ChainNoise(replay, torch.device("cpu"))  # the chain's noise source, keyed as `generate` keys it
    shape = torch.empty(len(generator.levels), 2 * batch, width)
    states = list(draws.normal(shape))  # x_T, (2B, w) each
    expected = {level: {6: states[i]} for i, level in enumerate(generator.levels)}
    for t in range(5, -1, -1):
        noise = draws.normal(shape) if t > 0 else None
        sigma = torch.exp(0.5 * diffusion.posterior_log_variance_clipped[t])
        for i, level in enumerate(generator.levels):
            with torch.no_grad():
                plain = generator.denoisers[level]
                mean = diffusion.p_mean(lambda x, s, c, d=plain: d(x, s, c), states[i], t, conditions[i])
            states[i] = mean if noise is None else mean + sigma * noise[i]
            expected[level][t] = states[i]
    for level in generator.levels:
        scale = generator.scale(level)
        for k in keep_steps:
            torch.testing.assert_close(out[level]["head"][k], expected[level][k][:batch] * scale, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(out[level]["tail"][k], expected[level][k][batch:] * scale, rtol=1e-4, atol=1e-5)


def test_generator_keeps_one_separately_trainable_denoiser_per_level():
    model, _ = untrained_model("transe", with_text=True)
    generator = build_generator(model, num_steps=4, beta_start=1e-4, beta_end=0.02)
    stack = generator.denoiser_stack()
    assert [id(d) for d in stack.denoisers] == [id(generator.denoisers[level]) for level in generator.levels]
    saved_levels = {key.split(".")[1] for key in generator.state_dict() if key.startswith("denoisers.")}
    assert saved_levels == {"structural", "text"}  # the checkpoint layout: denoisers.<level>.<parameter>


def test_generator_checkpoint_round_trip(tmp_path):
    model, triples = pretrained_model("rotate", with_text=False)
    generator = build_generator(model, num_steps=8, beta_start=1e-4, beta_end=0.02)
    save_generator(generator, tmp_path / "g")
    restored = load_generator(tmp_path / "g")
    assert restored.levels == ("structural",)
    a = generator.generate(model, triples[:4], [0], generator=torch.Generator().manual_seed(3), chain=FULL_CHAIN)
    b = restored.generate(model, triples[:4], [0], generator=torch.Generator().manual_seed(3), chain=FULL_CHAIN)
    torch.testing.assert_close(a["structural"]["tail"][0], b["structural"]["tail"][0])


def test_diffusion_params_are_validated():
    with pytest.raises(ValueError, match="report_steps"):
        dataclasses.replace(diffusion_config(), report_steps=(0, 99))
    with pytest.raises(ValueError, match="loss"):
        diffusion_config(loss="huber")


# ----- the loss over rows that have a level -------------------------------------------------------------


def text_model(missing: torch.Tensor | None = None) -> tuple[KGCModel, torch.Tensor, HierarchicalGenerator]:
    """An untrained model with text (absent for the `missing` entities) and its generator, seeded."""
    torch.manual_seed(0)
    triples, num_entities = toy_graph()
    present = torch.ones(num_entities, dtype=torch.bool)
    if missing is not None:
        present[missing] = False
    features = {"text": (torch.randn(num_entities, 6) * present[:, None], present)}
    model = KGCModel(model_config(name="transe", embedding_dim=8, margin=4.0), num_entities, 2, features)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    generator = build_generator(model, num_steps=10, beta_start=1e-4, beta_end=0.02)
    assert generator.levels == ("structural", "text")
    return model, triples, generator


def reference_loss(generator, model, triples, seed, loss_type="l1"):
    """The loss by hand, level by level, tail then head, each drawing t then noise for every row; a level's
    error is averaged over the rows whose both ends have it (the plain mean when all have it)."""
    replay = torch.Generator().manual_seed(seed)
    heads, tails = level_views(model, triples[:, 0]), level_views(model, triples[:, 2])
    presence = model.entities.modality_presence
    total = torch.zeros(())
    for level in generator.levels:
        keep = presence(triples[:, 0])[level] & presence(triples[:, 2])[level]
        conditions = side_conditions(model, triples, heads[level], tails[level])
        scale = generator.scale(level)
        for side, target in (("tail", tails[level]), ("head", heads[level])):
            x0, condition = target / scale, conditions[side] / scale
            t = torch.randint(0, generator.diffusion.num_steps, (x0.shape[0],), generator=replay)
            noise = torch.randn(x0.shape, generator=replay)
            predicted = generator.denoisers[level](generator.diffusion.q_sample(x0, t, noise), t, condition)
            error = (predicted - noise).abs() if loss_type == "l1" else (predicted - noise).square()
            if keep.all():
                total = total + error.mean()  # the unmasked formula the loss had before masking
            elif keep.any():
                total = total + error[keep].mean()
    return total


@pytest.mark.parametrize("loss_type", ["l1", "l2"])
def test_loss_with_every_row_present_equals_the_plain_mean_of_the_noise_error(loss_type):
    model, triples, generator = text_model()
    batch = triples[:12]
    loss = generator.loss(model, batch, loss_type=loss_type, generator=torch.Generator().manual_seed(5))
    expected = reference_loss(generator, model, batch, seed=5, loss_type=loss_type)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)


def test_loss_of_a_batch_without_text_at_both_ends_is_the_structural_loss_alone():
    triples, _ = toy_graph()
    batch = triples[:8]
    model, _, generator = text_model(missing=batch[:, 0])  # every row's head lacks text; tails have it
    assert not (model.entities.modality_presence(batch[:, 0])["text"]
                & model.entities.modality_presence(batch[:, 2])["text"]).any()
    loss = generator.loss(model, batch, generator=torch.Generator().manual_seed(2))
    assert torch.isfinite(loss)

    structural_only = HierarchicalGenerator(("structural",), generator.width, generator.diffusion,
                                            {"structural": float(generator.scale("structural"))})
    structural_only.denoisers["structural"].load_state_dict(generator.denoisers["structural"].state_dict())
    expected = structural_only.loss(model, batch, generator=torch.Generator().manual_seed(2))  # draws come first
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    torch.testing.assert_close(loss, reference_loss(generator, model, batch, seed=2), rtol=1e-6, atol=1e-7)

    loss.backward()
    for name, parameter in generator.named_parameters():
        assert parameter.grad is None or torch.isfinite(parameter.grad).all(), name
        if name.startswith("denoisers.text.") and parameter.grad is not None:
            assert not parameter.grad.any(), name  # the text level contributed nothing
    assert any(p.grad is not None and p.grad.any() for p in generator.denoisers["structural"].parameters())


@pytest.mark.parametrize("value", [1e4, float("nan")])
def test_rows_without_the_modality_do_not_change_the_loss(value):
    triples, _ = toy_graph()
    batch = triples[:10]
    missing = batch[:3, 2]  # three rows lack text at the tail, the others have it at both ends
    model, _, generator = text_model(missing=missing)
    first = generator.loss(model, batch, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, reference_loss(generator, model, batch, seed=7), rtol=1e-6, atol=1e-7)

    model.entities.features_text[missing] = value  # the masked rows' text views change (to NaN, even)
    changed = generator.loss(model, batch, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(changed, first, rtol=0, atol=0)
    changed.backward()
    assert all(torch.isfinite(p.grad).all() for p in generator.parameters() if p.grad is not None)
