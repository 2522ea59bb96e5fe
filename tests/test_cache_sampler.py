"""The cache of real hard negatives (NSCaching): its refresh by hand, its draws, its filter, seeds and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from configs import model_config, pretrain_config
from dhns.config import SAMPLER_NAMES, ParamsError, negative_scheme
from dhns.evaluation import build_filter_index, evaluate_link_prediction
from dhns.models.kgc import KGCModel
from dhns.sampling import CacheSampler, make_sampler
from dhns.sampling.cache import EMPTY, keep
from dhns.training.checkpoint import Checkpointing
from dhns.training.kgc import train_kgc
from dhns.training.objective import build_objective

# TransE in one dimension, so every score is margin - |query - entity|, computed by hand below
ENTITY_VALUES = [0.0, 0.1, 0.2, 0.45, 3.0, -0.4]
RELATION_VALUE = 0.3
HAND_TRIPLES = torch.tensor([[0, 0, 1], [0, 0, 2]])  # (0, r, 1) and (0, r, 2) are known: 1 and 2 never cached for (0, r)


def hand_model() -> KGCModel:
    model = KGCModel(model_config(name="transe", embedding_dim=1, margin=1.0), len(ENTITY_VALUES), 1)
    with torch.no_grad():
        model.entities.structural.weight.copy_(torch.tensor(ENTITY_VALUES).unsqueeze(1))
        model.relations.weight.fill_(RELATION_VALUE)
    return model


def hand_cache(size: int, pool: int, rule: str) -> CacheSampler:
    sides = make_sampler("uniform", HAND_TRIPLES, len(ENTITY_VALUES), 1, num_negatives=3)
    return CacheSampler(sides, HAND_TRIPLES, size, pool, rule)


def test_top_refresh_keeps_the_highest_scoring_admissible_entities_by_hand():
    """Query (0, r): tails scored by -|0 + 0.3 - e|, 1 and 2 excluded (training triples): 0.45 (id 3) and 0.0 (id 0)
    are the two best. Query (r, 1): heads scored by -|e + 0.3 - 0.1|, 0 excluded: -0.4 (id 5) and 0.1 (id 1)."""
    def best(scores: dict[int, float], excluded: set[int], count: int) -> set[int]:
        return set(sorted((e for e in scores if e not in excluded), key=lambda e: -scores[e])[:count])

    tail_scores = {e: -abs(ENTITY_VALUES[0] + RELATION_VALUE - value) for e, value in enumerate(ENTITY_VALUES)}
    head_scores = {e: -abs(value + RELATION_VALUE - ENTITY_VALUES[1]) for e, value in enumerate(ENTITY_VALUES)}
    assert best(tail_scores, {1, 2}, 2) == {3, 0} and best(head_scores, {0}, 2) == {5, 1}  # the docstring's reading

    sampler = hand_cache(size=2, pool=60, rule="top")  # a pool of 60 draws over 6 entities holds all of them
    generator = torch.Generator().manual_seed(0)
    positive = HAND_TRIPLES[:1]
    sampler.sample(positive, generator)  # fills the caches
    sampler.refresh(hand_model(), positive, generator)
    tail_row = sampler.tail_queries.rows(torch.tensor([0]), torch.tensor([0]))
    head_row = sampler.head_queries.rows(torch.tensor([1]), torch.tensor([0]))
    assert set(sampler.tail_cache[tail_row].flatten().tolist()) == best(tail_scores, {1, 2}, 2)
    assert set(sampler.head_cache[head_row].flatten().tolist()) == best(head_scores, {0}, 2)


def test_negatives_are_drawn_from_the_cache_of_the_corrupted_side():
    sampler = hand_cache(size=2, pool=60, rule="top")
    generator = torch.Generator().manual_seed(1)
    positives = HAND_TRIPLES[:1].repeat(200, 1)
    sampler.sample(positives[:1], generator)
    sampler.refresh(hand_model(), positives[:1], generator)
    negatives = sampler.sample(positives, generator)
    tail_side = set(negatives.entities[negatives.corrupt_tail].flatten().tolist())
    head_side = set(negatives.entities[~negatives.corrupt_tail].flatten().tolist())
    assert tail_side == {3, 0} and head_side == {5, 1}  # the caches of (0, r) and (r, 1) above, each slot drawn
    assert negatives.valid.all()


def test_importance_refresh_draws_without_replacement_in_proportion_to_exp_score():
    """Weights exp(score) = 1, 2, 3 (the fourth candidate excluded). One kept: 1/6, 2/6, 3/6. Two kept, the pair
    {b, c}: b first then c, (2/6)(3/4), or c first then b, (3/6)(2/3): 7/12 in all."""
    rows = 20000
    candidates = torch.tensor([[10, 11, 12, 13]]).repeat(rows, 1)
    scores = torch.log(torch.tensor([[1.0, 2.0, 3.0, 100.0]])).repeat(rows, 1)
    excluded = torch.tensor([[False, False, False, True]]).repeat(rows, 1)
    generator = torch.Generator().manual_seed(0)
    one = keep(candidates, scores, excluded, 1, "importance", generator).flatten()
    for entity, expected in ((10, 1 / 6), (11, 2 / 6), (12, 3 / 6)):
        assert (one == entity).double().mean().item() == pytest.approx(expected, abs=0.012)
    assert not (one == 13).any()
    two = keep(candidates, scores, excluded, 2, "importance", generator)
    pair = ((two == 11).any(dim=1) & (two == 12).any(dim=1)).double().mean().item()
    assert pair == pytest.approx((2 / 6) * (3 / 4) + (3 / 6) * (2 / 3), abs=0.012)
    assert (two[:, 0] != two[:, 1]).all()  # without replacement


def test_slots_without_an_admissible_candidate_stay_empty():
    candidates = torch.tensor([[4, 4, 7, 9]])
    excluded = torch.tensor([[False, True, True, False]])  # the repeat of 4 and the known 7
    kept = keep(candidates, torch.zeros(1, 4), excluded, 3, "top", None)
    assert sorted(kept.flatten().tolist()) == sorted([4, 9, EMPTY])


def dense_graph(seed: int = 0) -> torch.Tensor:
    """30 entities, 2 relations, head 0 linked by relation 0 to every entity but 28 and 29."""
    generator = torch.Generator().manual_seed(seed)
    random = torch.randint(30, (150, 3), generator=generator)
    random[:, 1] %= 2
    full = torch.tensor([[0, 0, e] for e in range(28)])
    return torch.unique(torch.cat([random, full]), dim=0)


def test_training_triples_and_repeats_never_enter_a_cache():
    triples = dense_graph()
    known = {tuple(t) for t in triples.tolist()}
    config = pretrain_config(sampler="nscaching", cache_size=5, cache_pool=10, num_negatives=6, batch_size=16)
    torch.manual_seed(0)
    model = KGCModel(model_config(name="transe", embedding_dim=8, margin=4.0), 30, 2)
    objective = build_objective(config, triples, 30, 2)
    sampler = objective.sampler
    generator = torch.Generator().manual_seed(0)
    for start in range(0, triples.shape[0], 16):
        batch = triples[start:start + 16]
        sampler.sample(batch, generator)
        sampler.refresh(model, batch, generator)
        for queries, cache, tail in ((sampler.tail_queries, sampler.tail_cache, True),
                                     (sampler.head_queries, sampler.head_cache, False)):
            rows = torch.arange(len(queries))
            for anchor, relation, entities in zip(queries.anchors(rows).tolist(), queries.relations(rows).tolist(),
                                                  cache.tolist()):
                held = [e for e in entities if e != EMPTY]
                assert len(held) == len(set(held)), (anchor, relation, entities)
                for e in held:
                    triple = (anchor, relation, e) if tail else (e, relation, anchor)
                    assert triple not in known, triple
    # (0, r0) has two admissible tails (28, 29): three of its five slots stay empty, and their draws are masked
    row = sampler.tail_queries.rows(torch.tensor([0]), torch.tensor([0]))
    assert sorted(sampler.tail_cache[row].flatten().tolist()) == [EMPTY] * 3 + [28, 29]
    negatives = sampler.sample(torch.tensor([[0, 0, 1]]).repeat(400, 1), generator)
    tails = negatives.entities[negatives.corrupt_tail]
    assert torch.equal(negatives.valid[negatives.corrupt_tail], (tails == 28) | (tails == 29))
    assert not negatives.valid[negatives.corrupt_tail].all()


def test_a_query_outside_the_training_triples_is_refused():
    sampler = hand_cache(size=2, pool=4, rule="top")
    with pytest.raises(ValueError, match="training triples"):
        sampler.sample(torch.tensor([[3, 0, 4]]), torch.Generator().manual_seed(0))


def test_presets_and_the_cache_axis():
    assert negative_scheme("nscaching") == negative_scheme("uniform", weighting="uniform", cache="nscaching")
    assert negative_scheme("bernoulli_nscaching").corruption == "bernoulli"
    assert {"nscaching", "bernoulli_nscaching"} <= set(SAMPLER_NAMES)  # pretraining can use them too
    triples = dense_graph()
    on_self_adversarial = pretrain_config(sampler="self_adversarial", cache="nscaching")
    objective = build_objective(on_self_adversarial, triples, 30, 2)
    assert isinstance(objective.sampler, CacheSampler) and objective.adversarial_temperature == 1.0
    assert not isinstance(build_objective(pretrain_config(sampler="nscaching", cache="none"), triples, 30, 2).sampler,
                          CacheSampler)
    with pytest.raises(ParamsError, match="cache_refresh"):
        pretrain_config(cache_refresh="lru")
    with pytest.raises(ParamsError, match="cache_size"):
        pretrain_config(cache_size=0)


CACHED = pretrain_config(sampler="nscaching", cache_size=4, cache_pool=4, num_negatives=4, batch_size=16, kgc_lr=0.01,
                         num_epochs=6, eval_every=2, patience=0)


def fit(config, seed: int = 3, checkpointing: Checkpointing | None = None, stop_after: int | None = None):
    triples = dense_graph()
    torch.manual_seed(0)
    model = KGCModel(model_config(name="transe", embedding_dim=8, margin=4.0), 30, 2)
    objective = build_objective(config, triples, 30, 2)

    def interrupt(record: dict) -> None:
        if stop_after is not None and record["epoch"] == stop_after:
            raise KeyboardInterrupt

    result = train_kgc(model, triples, triples[:10], build_filter_index(triples, 30), objective, config, seed=seed,
                       stage="pretrain", checkpointing=checkpointing, on_epoch=interrupt)
    return model, objective.sampler, result


def test_cached_training_is_repeatable_under_a_seed_and_differs_across_seeds():
    model_a, sampler_a, _ = fit(CACHED)
    model_b, sampler_b, _ = fit(CACHED)
    model_c, sampler_c, _ = fit(CACHED, seed=4)
    assert torch.equal(model_a.entities.structural.weight, model_b.entities.structural.weight)
    assert torch.equal(sampler_a.tail_cache, sampler_b.tail_cache)
    assert torch.equal(sampler_a.head_cache, sampler_b.head_cache)
    assert not torch.equal(sampler_a.tail_cache, sampler_c.tail_cache)
    assert not torch.equal(model_a.entities.structural.weight, model_c.entities.structural.weight)


def test_killed_cached_training_resumes_with_its_caches(tmp_path: Path):
    reference, reference_sampler, reference_result = fit(CACHED)
    checkpointing = Checkpointing(tmp_path / "ckpt", every=1)
    with pytest.raises(KeyboardInterrupt):
        fit(CACHED, checkpointing=checkpointing, stop_after=3)
    assert torch.load(checkpointing.path, weights_only=True)["samplers"][0]["tail_cache"].shape[1] == 4
    resumed, resumed_sampler, resumed_result = fit(CACHED, checkpointing=checkpointing)
    assert torch.equal(resumed.entities.structural.weight, reference.entities.structural.weight)
    assert torch.equal(resumed_sampler.tail_cache, reference_sampler.tail_cache)
    assert resumed_result.best_valid_metric == reference_result.best_valid_metric


def test_resume_without_the_caches_would_differ(tmp_path: Path, monkeypatch):
    """Guards the test above: the same resume with the snapshot's caches dropped trains another model."""
    reference, _, _ = fit(CACHED)
    checkpointing = Checkpointing(tmp_path / "ckpt", every=1)
    with pytest.raises(KeyboardInterrupt):
        fit(CACHED, checkpointing=checkpointing, stop_after=3)
    monkeypatch.setattr(CacheSampler, "load_state_dict", lambda self, state: None)
    resumed, _, _ = fit(CACHED, checkpointing=checkpointing)
    assert not torch.equal(resumed.entities.structural.weight, reference.entities.structural.weight)


def test_a_model_trained_on_cached_negatives_learns_a_functional_graph():
    from test_training import functional_graph

    torch.manual_seed(0)
    triples = functional_graph(20, 3)
    model = KGCModel(model_config(name="transe", embedding_dim=32, margin=6.0), 80, 3)
    config = pretrain_config(sampler="bernoulli_nscaching", cache_size=10, cache_pool=10, num_negatives=16,
                             batch_size=40, kgc_lr=0.02, num_epochs=100, eval_every=50, patience=0)
    index = build_filter_index(triples, 80)
    objective = build_objective(config, triples, 80, 3)
    train_kgc(model, triples, triples, index, objective, config, seed=0)
    assert evaluate_link_prediction(model, triples, index)["both"]["realistic"]["mrr"] > 0.9
    # the training loop refreshed the caches from the model: they hold entities it scores far above a random one's
    sampler = objective.sampler
    rows = torch.arange(len(sampler.tail_queries))
    heads, relations = sampler.tail_queries.anchors(rows), sampler.tail_queries.relations(rows)
    with torch.no_grad():
        every_tail = model.score_tails(heads, relations)  # (queries, entities)
    cached = every_tail.gather(1, sampler.tail_cache.clamp(min=0))[sampler.tail_cache != EMPTY]
    assert cached.mean() > every_tail.mean() + 1.0, (cached.mean(), every_tail.mean())
