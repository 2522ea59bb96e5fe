"""Losses by hand, and a sanity graph every scorer must learn in seconds."""

import dataclasses
import math

import pytest
import torch

from configs import model_config, pretrain_config
from dhns.training.objective import objective_for
from dhns.evaluation import build_filter_index, evaluate_link_prediction
from dhns.models.kgc import KGCModel
from dhns.sampling import make_sampler
from dhns.training.kgc import train_kgc
from dhns.training.objective import negative_weights, sigmoid_loss


def test_sigmoid_loss_by_hand():
    positive = torch.tensor([2.0])
    negative = torch.tensor([[1.0, -1.0]])
    weights = torch.tensor([[0.25, 0.75]])
    log_sigmoid = lambda x: -math.log1p(math.exp(-x))  # noqa: E731
    expected = (-log_sigmoid(2.0) - (0.25 * log_sigmoid(-1.0) + 0.75 * log_sigmoid(1.0))) / 2
    assert sigmoid_loss(positive, negative, weights).item() == pytest.approx(expected, rel=1e-6)


def test_self_adversarial_weights_follow_scores_and_skip_invalid():
    scores = torch.tensor([[0.0, math.log(3.0), 5.0]])
    valid = torch.tensor([[True, True, False]])
    torch.testing.assert_close(negative_weights(scores, valid, 1.0), torch.tensor([[0.25, 0.75, 0.0]]))
    torch.testing.assert_close(negative_weights(scores, valid, None), torch.tensor([[0.5, 0.5, 0.0]]))
    no_valid = negative_weights(scores, torch.zeros_like(valid), 1.0)
    assert torch.equal(no_valid, torch.zeros_like(no_valid))


def functional_graph(num_sources: int, num_relations: int, seed: int = 0) -> torch.Tensor:
    """Each relation maps every source entity to its own target entity: a forest of stars.

    Every scorer can represent it exactly (TransE cannot represent any permutation with cycles, since the
    translations around a cycle must sum to zero). Entities are shuffled so ids carry no structure.
    Returns (num_sources * num_relations, 3) triples over num_sources * (1 + num_relations) entities.
    """
    generator = torch.Generator().manual_seed(seed)
    num_entities = num_sources * (1 + num_relations)
    ids = torch.randperm(num_entities, generator=generator)
    sources = ids[:num_sources]
    triples = [
        torch.stack([sources, torch.full((num_sources,), r), ids[num_sources * (r + 1) : num_sources * (r + 2)]], dim=1)
        for r in range(num_relations)
    ]
    return torch.cat(triples)


@pytest.mark.parametrize("name", ["transe", "distmult", "rotate"])
def test_every_scorer_learns_a_functional_graph(name):
    torch.manual_seed(0)
    num_sources, num_relations = 20, 3
    num_entities = num_sources * (1 + num_relations)
    triples = functional_graph(num_sources, num_relations)
    margin = 0.0 if name == "distmult" else 6.0
    model = KGCModel(model_config(name=name, embedding_dim=32, margin=margin), num_entities, num_relations)
    config = pretrain_config(sampler="self_adversarial", num_negatives=16, batch_size=40, kgc_lr=0.02,
                            num_epochs=150, eval_every=50, patience=0)
    sampler = make_sampler(config.negatives.corruption, triples, num_entities, num_relations, config.num_negatives)
    index = build_filter_index(triples, num_entities)
    train_kgc(model, triples, triples, index, objective_for(config, sampler), config, seed=0)
    metrics = evaluate_link_prediction(model, triples, index)
    assert metrics["both"]["realistic"]["mrr"] > 0.9, metrics["both"]["realistic"]


def test_untrained_model_is_near_random():
    """Guards the sanity test above: without training the same graph scores far below 0.9."""
    torch.manual_seed(0)
    triples = functional_graph(20, 3)
    model = KGCModel(model_config(name="transe", embedding_dim=32, margin=6.0), 80, 3).eval()
    metrics = evaluate_link_prediction(model, triples, build_filter_index(triples, 80))
    assert metrics["both"]["realistic"]["mrr"] < 0.3


def test_training_is_deterministic_for_a_seed():
    triples = functional_graph(10, 1)
    config = pretrain_config(num_negatives=4, batch_size=16, num_epochs=3, eval_every=3, patience=0)

    def run() -> dict:
        torch.manual_seed(0)
        model = KGCModel(model_config(name="rotate", embedding_dim=8), 20, 2)
        sampler = make_sampler(config.negatives.corruption, triples, 20, 2, config.num_negatives)
        return train_kgc(model, triples, triples, build_filter_index(triples, 20), objective_for(config, sampler), config, seed=3).history

    first, second = run(), run()
    assert [r["loss"] for r in first] == [r["loss"] for r in second]
    assert first[-1]["valid_mrr"] == second[-1]["valid_mrr"]


def test_seeded_multimodal_training_is_bit_identical_at_a_scale_that_uses_threads():
    """Large enough for multi-threaded scatter-adds, whose float sums reorder unless deterministic."""
    from dhns.host import seed_everything

    generator = torch.Generator().manual_seed(0)
    num_entities, num_relations = 3000, 5
    triples = torch.stack([torch.randint(0, num_entities, (4000,), generator=generator),
                           torch.randint(0, num_relations, (4000,), generator=generator),
                           torch.randint(0, num_entities, (4000,), generator=generator)], dim=1)
    features = {"text": (torch.randn(num_entities, 24, generator=generator), torch.ones(num_entities, dtype=torch.bool))}
    config = pretrain_config(num_negatives=32, batch_size=1000, num_epochs=2, eval_every=2, patience=0)

    def run() -> dict:
        seed_everything(0)
        model = KGCModel(model_config(name="transe", embedding_dim=64), num_entities, num_relations, features)
        sampler = make_sampler(config.negatives.corruption, triples, num_entities, num_relations, config.num_negatives)
        train_kgc(model, triples, triples[:200], build_filter_index(triples, num_entities), objective_for(config, sampler), config, seed=0)
        return model.state_dict()

    first, second = run(), run()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_precision_context_switches_matmuls_only_inside_the_step():
    from dhns.training.step import precision_context

    layer, x = torch.nn.Linear(4, 4), torch.randn(2, 4)
    with precision_context("bf16", torch.device("cpu")):
        assert layer(x).dtype == torch.bfloat16
    with precision_context("fp32", torch.device("cpu")):
        assert layer(x).dtype == torch.float32
    assert layer(x).dtype == torch.float32


def test_bf16_training_matches_fp32_within_noise():
    """bf16 autocast changes rounding, not what is learned: same fit, close losses (CPU autocast here).

    Text features make the fusion's projection a matmul that autocast runs in bf16.
    """
    triples = functional_graph(12, 2)
    num_entities = 12 * 3
    text = (torch.randn(num_entities, 24, generator=torch.Generator().manual_seed(1)),
            torch.ones(num_entities, dtype=torch.bool))
    results = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = KGCModel(model_config(name="distmult", embedding_dim=16, margin=0.0), num_entities, 2, {"text": text})
        config = pretrain_config(sampler="self_adversarial", num_negatives=8, batch_size=12, kgc_lr=0.05,
                                num_epochs=60, eval_every=60, patience=0, precision=precision)
        sampler = make_sampler(config.negatives.corruption, triples, num_entities, 2, config.num_negatives)
        index = build_filter_index(triples, num_entities)
        result = train_kgc(model, triples, triples, index, objective_for(config, sampler), config, seed=0)
        results[precision] = (evaluate_link_prediction(model, triples, index)["both"]["realistic"]["mrr"],
                              result.history[-1]["loss"])
    (mrr32, loss32), (mrr16, loss16) = results["fp32"], results["bf16"]
    assert mrr32 > 0.8 and abs(mrr32 - mrr16) < 0.1, results
    assert abs(loss32 - loss16) < 0.2 * loss32 + 0.02, results
    assert loss32 != loss16  # bf16 really ran: rounding differs


def scripted_validation(monkeypatch, mrrs):
    """Replace validation inside train_kgc by a stub returning `mrrs` in turn (then ever lower values)."""
    import dhns.training.kgc

    calls = []

    def evaluate(model, *args, **kwargs):
        value = mrrs[len(calls)] if len(calls) < len(mrrs) else 0.01 / (1 + len(calls))
        calls.append(value)
        return {"both": {"realistic": {"mrr": value, "hits_at_10": value}}}

    monkeypatch.setattr(dhns.training.kgc, "evaluate_link_prediction", evaluate)
    return calls


def train_with_snapshots(config):
    """Real training steps on a tiny graph; returns the result, the final parameters and every epoch's."""
    torch.manual_seed(0)
    triples = functional_graph(10, 1)
    model = KGCModel(model_config(name="transe", embedding_dim=8), 20, 1)
    sampler = make_sampler(config.negatives.corruption, triples, 20, 1, config.num_negatives)
    snapshots = {}

    def on_epoch(record):
        snapshots[record["epoch"]] = {key: value.detach().clone() for key, value in model.state_dict().items()}

    result = train_kgc(model, triples, triples, build_filter_index(triples, 20), objective_for(config, sampler), config, seed=0,
                       on_epoch=on_epoch)
    return result, model.state_dict(), snapshots


def same_state(first, second):
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize("eval_every", [1, 2])
def test_early_stopping_stops_within_patience_of_the_peak_and_restores_the_best_parameters(monkeypatch, eval_every):
    patience = 2
    calls = scripted_validation(monkeypatch, [0.2, 0.5, 0.4, 0.3, 0.1])
    config = pretrain_config(num_negatives=4, batch_size=8, kgc_lr=0.05, num_epochs=30, eval_every=eval_every,
                            patience=patience)
    result, final, snapshots = train_with_snapshots(config)

    peak_epoch = 2 * eval_every  # the second validation pass scores 0.5, every later one less
    assert result.best_epoch == peak_epoch
    assert result.best_valid_metric == 0.5
    # the loop checks `stale >= patience` before each epoch: it stops after `patience` stale evaluations
    assert result.epochs_run == peak_epoch + patience * eval_every
    assert len(calls) == 2 + patience
    assert [record["epoch"] for record in result.history] == list(range(1, result.epochs_run + 1))
    assert sorted(snapshots) == list(range(1, result.epochs_run + 1))

    assert not same_state(snapshots[peak_epoch], snapshots[result.epochs_run])  # training really moved on
    assert same_state(final, snapshots[peak_epoch])
    assert not same_state(final, snapshots[result.epochs_run])


def test_patience_zero_never_stops_early(monkeypatch):
    calls = scripted_validation(monkeypatch, [0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01])
    config = pretrain_config(num_negatives=4, batch_size=8, kgc_lr=0.05, num_epochs=8, eval_every=1, patience=0)
    result, final, snapshots = train_with_snapshots(config)

    assert result.epochs_run == 8 and len(result.history) == 8 and len(calls) == 8
    assert result.best_epoch == 1 and result.best_valid_metric == 0.9
    assert same_state(final, snapshots[1])  # the best parameters are still restored at the end
    assert not same_state(final, snapshots[8])


def test_auto_precision_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    """auto follows the device: emulated bf16 (AVX2-only CPUs) was 38x slower than fp32, so it means fp32 there."""
    import dhns.host as host
    from dhns.training.step import precision_context

    for native_bf16, expected in ((True, "bf16"), (False, "fp32")):
        host.has_native_bf16.cache_clear()
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native_bf16, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
        assert host.resolve_precision("auto", torch.device("cpu")) == expected
        with precision_context("auto", torch.device("cpu")):
            assert torch.is_autocast_enabled("cpu") == (expected == "bf16")
    host.has_native_bf16.cache_clear()
    assert host.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert host.resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_min_epochs_defers_early_stopping_and_the_plateau_schedule_decays_every_rate(monkeypatch):
    """Validation MRR 0.5 at epoch 1, then always less; patience 1, min_epochs 4, a decay of 0.5 after each
    validation without gain (lr_decay_patience 1). By hand: epochs 2, 3 and 4 are stale, so the rate is
    0.04 * 0.5 = 0.02 after epoch 2, 0.01 after 3, 0.005 after 4; the run may stop only once 4 epochs ran."""
    scripted_validation(monkeypatch, [0.5, 0.4, 0.3, 0.2, 0.1])
    config = pretrain_config(num_negatives=4, batch_size=8, kgc_lr=0.04, num_epochs=30, eval_every=1, patience=1,
                             min_epochs=4, lr_schedule="plateau", lr_decay_factor=0.5, lr_decay_patience=1)
    result, _, _ = train_with_snapshots(config)
    assert result.epochs_run == 4 and result.best_epoch == 1
    assert [record["lr"] for record in result.history] == pytest.approx([0.04, 0.02, 0.01, 0.005])
    without_minimum = train_with_snapshots(dataclasses.replace(config, min_epochs=0))[0]
    assert without_minimum.epochs_run == 2  # patience 1 alone stops after the first stale validation


def test_the_plateau_decay_waits_for_its_own_patience_and_reaches_a_row_optimizer_s_dense_adam(monkeypatch):
    """lr_decay_patience 2: stale validations at epochs 2 and 3 decay once (after 3), the gain at 4 resets the
    count, stale 5 and 6 decay again. Row-wise Adagrad's table rate (0.1) and its dense Adam's (kgc_lr 0.01) both."""
    scripted_validation(monkeypatch, [0.3, 0.2, 0.1, 0.4, 0.3, 0.2, 0.1])
    config = pretrain_config(num_negatives=4, batch_size=8, kgc_lr=0.01, num_epochs=7, eval_every=1, patience=0,
                             lr_schedule="plateau", lr_decay_factor=0.1, lr_decay_patience=2, optimizer="row_adagrad")
    seen = []
    import dhns.training.kgc as kgc

    original = kgc.learning_rate

    def spy(optimizer):
        seen.append(optimizer.dense.param_groups[0]["lr"])
        return original(optimizer)

    monkeypatch.setattr(kgc, "learning_rate", spy)
    result, _, _ = train_with_snapshots(config)
    assert [record["lr"] for record in result.history] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001])
    assert seen == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.001, 0.0001, 0.0001])
