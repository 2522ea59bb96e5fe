"""Negative samplers: side choice, false-negative filtering, determinism."""

import pytest
import torch

from configs import model_config, pretrain_config, train_config
from dhns.training.objective import build_objective
from dhns.sampling import BernoulliSampler, UniformSampler, make_sampler
from dhns import native
from dhns.sampling.negatives import KeySet, prime_at_least


def test_bernoulli_corrupts_the_head_of_one_to_many_relations():
    # relation 0: one head, four tails (1-to-N): tph = 4, hpt = 1 -> replace the head with prob 4/5.
    # relation 1: four heads, one tail (N-to-1): tph = 1, hpt = 4 -> replace the head with prob 1/5.
    triples = torch.tensor([[0, 0, t] for t in range(1, 5)] + [[h, 1, 0] for h in range(1, 5)])
    sampler = BernoulliSampler(triples, num_entities=5, num_relations=3, num_negatives=2)
    tail_probability = sampler.corrupt_tail_probability(torch.tensor([0, 1, 2]))
    torch.testing.assert_close(tail_probability, torch.tensor([0.2, 0.8, 0.5]))


@pytest.fixture(params=["compiled", "pytorch"])
def filter_form(request, monkeypatch):
    """Both forms of the false-negative filter (`dhns.native.filter_negatives` and `NegativeSampler._filter`)."""
    if request.param == "pytorch":
        monkeypatch.setenv("DHNS_NATIVE", "0")
    elif not native.available():
        pytest.skip("no C compiler: only the PyTorch form exists here")
    return request.param


def test_samples_avoid_known_training_triples(filter_form):
    # Entity 0 is linked to all but entity 3 by relation 0: the only true negative tail for (0, 0, ?) is 3.
    num_entities = 6
    triples = torch.tensor([[0, 0, t] for t in (0, 1, 2, 4, 5)])
    sampler = UniformSampler(triples, num_entities, num_relations=1, num_negatives=50, redraws=30)
    generator = torch.Generator().manual_seed(0)
    negatives = sampler.sample(torch.tensor([[0, 0, 1]] * 40), generator)
    tails = negatives.entities[negatives.corrupt_tail]
    valid = negatives.valid[negatives.corrupt_tail]
    assert (tails[valid] == 3).all()
    assert valid.float().mean() > 0.9  # redraws found the true negative for almost every slot
    known = {tuple(t) for t in triples.tolist()}
    for row, (entities, tail_side, ok) in enumerate(zip(negatives.entities, negatives.corrupt_tail, negatives.valid)):
        for entity, keep in zip(entities.tolist(), ok.tolist()):
            candidate = (0, 0, entity) if tail_side else (entity, 0, 1)
            assert keep == (candidate not in known)


@pytest.mark.parametrize("redraws", [0, 1, 3])
def test_each_slot_keeps_its_first_draw_that_forms_no_known_triple(filter_form, redraws):
    """Replays the sampler's random calls (side coin, then 1 + redraws draws of (B, k)) and decides each slot in
    plain Python: the first draw whose triple is unknown, else the last draw, marked invalid."""
    num_entities, num_relations, batch, k = 7, 3, 30, 9
    generator = torch.Generator().manual_seed(redraws)
    pairs = [(h, r, t) for h in range(num_entities) for r in range(num_relations) for t in range(num_entities)]
    known = {pairs[i] for i in torch.randperm(len(pairs), generator=generator)[:100].tolist()}  # 2 in 3 known
    triples = torch.tensor(sorted(known))
    positives = triples[torch.randint(len(known), (batch,), generator=generator)]
    sampler = UniformSampler(triples, num_entities, num_relations, num_negatives=k, redraws=redraws)
    negatives = sampler.sample(positives, torch.Generator().manual_seed(5))

    replay = torch.Generator().manual_seed(5)
    tail_side = (torch.rand(batch, generator=replay) < 0.5).tolist()
    draws = [torch.randint(num_entities, (batch, k), generator=replay).tolist() for _ in range(1 + redraws)]
    expected_entities, expected_valid = [], []
    for b, (h, r, t) in enumerate(positives.tolist()):
        row_entities, row_valid = [], []
        for j in range(k):
            forms_known = [((h, r, d[b][j]) if tail_side[b] else (d[b][j], r, t)) in known for d in draws]
            first_unknown = forms_known.index(False) if False in forms_known else len(draws) - 1
            row_entities.append(draws[first_unknown][b][j])
            row_valid.append(not forms_known[first_unknown])
        expected_entities.append(row_entities)
        expected_valid.append(row_valid)
    assert negatives.corrupt_tail.tolist() == tail_side
    assert negatives.entities.tolist() == expected_entities
    assert negatives.valid.tolist() == expected_valid
    assert 0 < sum(map(sum, expected_valid)) < batch * k  # both outcomes occur


@pytest.mark.parametrize("corruption", ["uniform", "bernoulli"])
def test_compiled_filter_equals_the_pytorch_form(monkeypatch, corruption):
    if not native.available():
        pytest.skip("no C compiler: only the PyTorch form exists here")
    generator = torch.Generator().manual_seed(3)
    num_entities, num_relations = 12, 3  # 432 possible triples, about 70% of them known
    bounds = torch.tensor([num_entities, num_relations, num_entities])
    triples = torch.randint(0, 10**6, (500, 3), generator=generator) % bounds
    sampler = make_sampler(corruption, triples, num_entities, num_relations, 16)
    threads = torch.get_num_threads()
    try:
        compiled = []
        for count in (1, 3):  # each slot is one thread's: the same answer for any thread count
            torch.set_num_threads(count)
            compiled.append(sampler.sample(triples[:200], torch.Generator().manual_seed(11)))
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("DHNS_NATIVE", "0")
    plain = sampler.sample(triples[:200], torch.Generator().manual_seed(11))
    for negatives in compiled:
        assert torch.equal(negatives.entities, plain.entities) and torch.equal(negatives.valid, plain.valid)
    assert 0 < int(plain.valid.sum()) < plain.valid.numel()  # some slots stayed known after every redraw


def test_sampling_is_repeatable_with_a_seed():
    triples = torch.randint(0, 30, (100, 3)) % torch.tensor([30, 4, 30])
    sampler = make_sampler("bernoulli", triples, 30, 4, 8)
    first = sampler.sample(triples[:10], torch.Generator().manual_seed(7))
    second = sampler.sample(triples[:10], torch.Generator().manual_seed(7))
    assert torch.equal(first.entities, second.entities) and torch.equal(first.corrupt_tail, second.corrupt_tail)


def test_uniform_sides_are_balanced():
    triples = torch.tensor([[0, 0, 1]])
    negatives = UniformSampler(triples, 100, 1, 4).sample(torch.tensor([[0, 0, 1]] * 4000), torch.Generator().manual_seed(1))
    assert abs(negatives.corrupt_tail.float().mean().item() - 0.5) < 0.03


def test_unknown_corruption_lists_valid_names():
    with pytest.raises(ValueError, match="unknown corruption 'self_adversarial'; valid: uniform, bernoulli"):
        make_sampler("self_adversarial", torch.tensor([[0, 0, 1]]), 2, 1, 1)  # a preset, not a corruption rule


@pytest.mark.parametrize("count", [0, 1, 40, 5000])
def test_key_set_membership_agrees_with_a_python_set(count):
    """The bitmap only rules keys out: every answer is the exact one, colliding residues included."""
    generator = torch.Generator().manual_seed(count)
    keys = torch.randint(0, 10**10, (count,), generator=generator)
    key_set = KeySet(torch.cat([keys, keys[: count // 2]]))  # duplicates are fine
    colliding = keys[:20] + key_set.modulus * torch.arange(1, 21)[: min(20, count)]  # same residue, not a key
    queries = torch.cat([keys[:30], colliding, torch.randint(0, 10**10, (500,), generator=generator)]).view(-1, 1)
    expected = [int(q) in set(keys.tolist()) for q in queries.flatten()]
    assert key_set.contains(queries).flatten().tolist() == expected
    assert key_set.contains(queries).shape == queries.shape


def test_prime_at_least():
    assert [prime_at_least(n) for n in (0, 2, 8, 1021, 1022)] == [2, 2, 11, 1021, 1031]


@pytest.mark.parametrize("name, sides, weighted", [
    ("uniform", UniformSampler, False), ("bernoulli", BernoulliSampler, False),
    ("self_adversarial", UniformSampler, True), ("bernoulli_self_adversarial", BernoulliSampler, True),
])
def test_each_classic_sampler_is_a_choice_of_sides_and_of_negative_weights(monkeypatch, name, sides, weighted):
    """bernoulli_self_adversarial draws Bernoulli's sides and weighs them like self_adversarial (temperature)."""

    config = pretrain_config(sampler=name, num_negatives=2, batch_size=2, num_epochs=1, adversarial_temperature=0.7)
    assert first_step_of(monkeypatch, config) == {"sampler": sides, "temperature": 0.7 if weighted else None}


@pytest.mark.parametrize("name, sides", [("dhns", UniformSampler), ("bernoulli_dhns", BernoulliSampler)])
def test_dhns_base_negatives_are_self_adversarial_on_uniform_or_bernoulli_sides(monkeypatch, name, sides):
    """dhns keeps the reference's uniform sides; bernoulli_dhns puts the same generated negatives on Bernoulli's."""

    config = train_config(sampler=name, num_negatives=2, batch_size=2, num_epochs=1, adversarial_temperature=0.7)
    assert first_step_of(monkeypatch, config) == {"sampler": sides, "temperature": 0.7}


def first_step_of(monkeypatch, config) -> dict:
    """The sampler class and temperature of the objective train_kgc hands its step, built as the stages build it."""
    from dhns.training import kgc as training
    from dhns.models.kgc import KGCModel

    seen = {}

    def capture(model, optimizer, objective, sample_rng, *rest):
        seen.update(sampler=type(objective.sampler), temperature=objective.adversarial_temperature)
        raise StopIteration

    monkeypatch.setattr(training, "_make_step", capture)
    triples = torch.tensor([[0, 0, 1], [1, 0, 2], [2, 1, 3]])
    with pytest.raises(StopIteration):
        training.train_kgc(KGCModel(model_config(embedding_dim=4), 4, 2), triples, triples, None,
                           build_objective(config, triples, 4, 2), config)
    return seen


@pytest.mark.parametrize("settings, sides, temperature", [
    ({"sampler": "self_adversarial", "weighting": "uniform"}, UniformSampler, None),
    ({"sampler": "uniform", "corruption": "bernoulli", "weighting": "self_adversarial"}, BernoulliSampler, 0.7),
    ({"sampler": "dhns", "corruption": "bernoulli"}, BernoulliSampler, 0.7),
    ({"sampler": "dhns", "weighting": "uniform"}, UniformSampler, None),
])
def test_each_axis_set_in_params_overrides_the_sampler_preset(monkeypatch, settings, sides, temperature):
    """Corruption, weighting and generated negatives are independent settings; a preset only fills the unset ones."""

    config = train_config(**settings, num_negatives=2, batch_size=2, num_epochs=1, adversarial_temperature=0.7)
    assert first_step_of(monkeypatch, config) == {"sampler": sides, "temperature": temperature}
    assert config.negatives.uses_generator == (settings["sampler"] == "dhns")


def test_presets_name_distinct_schemes_and_generated_negatives_are_train_only():
    from dhns.config import SAMPLER_NAMES, SAMPLER_PRESETS

    assert len(set(SAMPLER_PRESETS.values())) == len(SAMPLER_PRESETS)
    assert set(SAMPLER_NAMES) == {"uniform", "bernoulli", "self_adversarial", "bernoulli_self_adversarial", "nscaching",
                                  "bernoulli_nscaching"}
    assert train_config(sampler="uniform", generated_negatives="dhns").negatives.uses_generator
    assert not train_config(sampler="dhns", generated_negatives="none").negatives.uses_generator
    with pytest.raises(ValueError, match="pretrain.sampler: 'dhns' is not one of"):
        pretrain_config(sampler="dhns")
    with pytest.raises(ValueError, match="train.corruption: 'sideways' is not one of"):
        train_config(corruption="sideways")

