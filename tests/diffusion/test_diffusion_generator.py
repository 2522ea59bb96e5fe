"""DiffHEG over a KGC model: gradient boundaries, hardness ordering on a toy KG, checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dhns.config import DiffusionConfig, ModelConfig, PretrainConfig
from dhns.diffusion.generator import build_generator, level_scales, load_generator, save_generator
from dhns.diffusion.report import hardness_report
from dhns.diffusion.training import generator_step, train_generator
from dhns.evaluation import build_filter_index
from dhns.models.kgc import KGCModel
from dhns.sampling import make_sampler
from dhns.training import train_kgc


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
    model = KGCModel(ModelConfig(name=name, embedding_dim=8, margin=4.0), num_entities, 2, features)
    config = PretrainConfig(num_negatives=8, batch_size=32, kgc_lr=0.02, num_epochs=60, eval_every=60, patience=0)
    sampler = make_sampler(config.sampler, triples, num_entities, 2, config.num_negatives)
    train_kgc(model, triples, triples, build_filter_index(triples, num_entities), sampler, config)
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
    out = generator.generate(model, triples[:5], keep_steps=[0, 3, 10])
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
    config = DiffusionConfig(num_diffusion_steps=50, num_epochs=1000, batch_size=32, generator_lr=5e-3)
    generator = build_generator(model, config.num_diffusion_steps, config.beta_start, config.beta_end)
    history = train_generator(generator, model, triples, config, seed=0)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    index = build_filter_index(triples, model.num_entities)
    report = hardness_report(generator, model, triples, index, [0, 5, 25, 50], torch.Generator().manual_seed(1))
    for level in ("structural", "text"):
        for side in ("head", "tail"):
            entries = report["levels"][level][side]
            assert entries["easy_to_hard_ordered"], (level, side, entries)
        structural = report["levels"]["structural"][side]
        assert structural["step_0"]["mean_distance"] < 0.7 * structural["step_50"]["mean_distance"]


def test_generator_checkpoint_round_trip(tmp_path):
    model, triples = pretrained_model("rotate", with_text=False)
    generator = build_generator(model, num_steps=8, beta_start=1e-4, beta_end=0.02)
    save_generator(generator, tmp_path / "g")
    restored = load_generator(tmp_path / "g")
    assert restored.levels == ("structural",)
    a = generator.generate(model, triples[:4], [0], generator=torch.Generator().manual_seed(3))
    b = restored.generate(model, triples[:4], [0], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a["structural"]["tail"][0], b["structural"]["tail"][0])


def test_diffusion_params_are_validated():
    with pytest.raises(ValueError, match="report_steps"):
        dataclasses.replace(DiffusionConfig(), report_steps=(0, 99))
    with pytest.raises(ValueError, match="loss"):
        DiffusionConfig(loss="huber")
