"""Lazy Adam: a step updates only the entity rows its batch touched, by Adam's rule on those rows."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from configs import model_config, pretrain_config
from dhns.training.objective import objective_for
from dhns import native
from dhns.evaluation import build_filter_index, evaluate_link_prediction
from dhns.models.kgc import KGCModel
from dhns.sampling import make_sampler
from dhns.training.kgc import kgc_optimizer, train_kgc, train_step
from dhns.training.step import LazyAdam, RowAdagrad, clip_gradients, summed_rows
from test_training import functional_graph


def adam_row(value: float, grads: list[float | None], lr: float, beta1: float = 0.9, beta2: float = 0.999,
             eps: float = 1e-8) -> float:
    """One scalar of a row under lazy Adam, by hand: steps where the row is untouched (None) change nothing,
    neither the value nor the moments; bias corrections count the parameter's steps, and eps is added to
    sqrt(v) before the bias correction (torch's SparseAdam; dense Adam adds it after)."""
    m = v = 0.0
    for step, grad in enumerate(grads, 1):
        if grad is None:
            continue
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        value -= lr * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step) * m / (math.sqrt(v) + eps)
    return value


def test_lazy_adam_moves_only_touched_rows_by_adams_rule():
    torch.manual_seed(0)
    table = nn.Embedding(4, 2, sparse=True)
    scale = nn.Parameter(torch.tensor([1.5]))
    start = table.weight.detach().clone()
    optimizer = LazyAdam([table.weight], [scale], lr=0.1)
    # step 1 touches rows 0 and 2 (row 2 twice), step 2 rows 0 and 1; loss = scale * sum of coefficients * rows
    steps = [(torch.tensor([0, 2, 2]), torch.tensor([[1.0, -2.0], [0.5, 0.25], [0.5, 0.25]])),
             (torch.tensor([0, 1]), torch.tensor([[-3.0, 0.5], [2.0, -1.0]]))]
    for ids, coefficients in steps:
        optimizer.zero_grad()
        (scale * (table(ids) * coefficients).sum()).backward()
        assert table.weight.grad.is_sparse
        optimizer.step()
    weight = table.weight.detach()
    # the gradient of row r is scale * (sum of its coefficients); scale is still 1.5 at step 1 and moved at step 2
    scale_after_one = adam_row(1.5, [float((steps[0][1] * start[steps[0][0]]).sum())], 0.1)
    expected = {
        (0, 0): adam_row(float(start[0, 0]), [1.5 * 1.0, scale_after_one * -3.0], 0.1),
        (0, 1): adam_row(float(start[0, 1]), [1.5 * -2.0, scale_after_one * 0.5], 0.1),
        (2, 0): adam_row(float(start[2, 0]), [1.5 * 1.0, None], 0.1),
        (2, 1): adam_row(float(start[2, 1]), [1.5 * 0.5, None], 0.1),
        (1, 0): adam_row(float(start[1, 0]), [None, scale_after_one * 2.0], 0.1),  # first update at step 2
        (1, 1): adam_row(float(start[1, 1]), [None, scale_after_one * -1.0], 0.1),
    }
    for (row, column), value in expected.items():
        assert float(weight[row, column]) == pytest.approx(value, abs=1e-6), (row, column)
    for row in (3,):  # never touched: exactly as initialised
        assert torch.equal(weight[row], start[row])
    state = optimizer.state_dict()
    clone = LazyAdam([nn.Parameter(weight.clone())], [nn.Parameter(scale.detach().clone())], lr=0.1)
    clone.load_state_dict(state)
    assert clone.state_dict()["sparse"]["state"][0]["step"] == 2


def test_lazy_adam_takes_the_update_torchs_sparse_adam_takes():
    torch.manual_seed(0)
    tables = [nn.Embedding(50, 3, sparse=True) for _ in range(2)]
    tables[1].weight.data.copy_(tables[0].weight.data)
    ours, theirs = LazyAdam([tables[0].weight], [], lr=0.05), torch.optim.SparseAdam([tables[1].weight], lr=0.05)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        ids = torch.randint(0, 50, (30,), generator=generator)
        coefficients = torch.randn(30, 3, generator=generator)
        for table, optimizer in zip(tables, (ours, theirs)):
            optimizer.zero_grad()
            (table(ids) * coefficients).square().sum().backward()
            optimizer.step()
    torch.testing.assert_close(tables[0].weight, tables[1].weight, rtol=0, atol=1e-6)


@pytest.mark.parametrize("max_grad_norm", [0.0, 0.01], ids=["unclipped", "clipped"])
@pytest.mark.parametrize("with_text", [False, True], ids=["structure", "multimodal"])
def test_a_lazy_kgc_step_leaves_rows_outside_the_batch_untouched(with_text, max_grad_norm):
    torch.manual_seed(0)
    triples = functional_graph(20, 3)
    num_entities = 80
    features = {"text": (torch.randn(num_entities, 6), torch.ones(num_entities, dtype=torch.bool))} if with_text else None
    model = KGCModel(model_config(name="transe", embedding_dim=8, margin=4.0), num_entities, 3, features)
    config = pretrain_config(num_negatives=2, batch_size=4, optimizer="lazy_adam", max_grad_norm=max_grad_norm)
    optimizer = kgc_optimizer(model, config)
    assert model.sparse_entity_gradients and isinstance(optimizer, LazyAdam)
    sampler = make_sampler("uniform", triples, num_entities, 3, config.num_negatives)
    before = model.entities.structural.weight.detach().clone()
    seen: list[torch.Tensor] = []
    original = sampler.sample

    def recording(positives, generator=None):
        negatives = original(positives, generator)
        seen.append(negatives.entities.reshape(-1))
        return negatives

    sampler.sample = recording
    batch = triples[:4]
    train_step(model, optimizer, objective_for(config, sampler), batch, torch.Generator().manual_seed(1))
    if max_grad_norm:  # the step's gradients (still held) were clipped to the global norm asked for
        grads = [p.grad.coalesce().values() if p.grad.is_sparse else p.grad for p in model.parameters()
                 if p.grad is not None]
        assert float(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))) <= max_grad_norm * 1.0001
    touched = torch.zeros(num_entities, dtype=torch.bool)
    touched[torch.cat([batch[:, 0], batch[:, 2], *seen])] = True
    moved = (model.entities.structural.weight.detach() != before).any(dim=1)
    assert moved.any() and not (moved & ~touched).any()


def test_lazy_adam_learns_a_functional_graph_like_adam():
    num_sources, num_relations = 20, 3
    num_entities = num_sources * (1 + num_relations)
    triples = functional_graph(num_sources, num_relations)
    index = build_filter_index(triples, num_entities)
    mrr = {}
    for optimizer in ("adam", "lazy_adam"):
        torch.manual_seed(0)
        model = KGCModel(model_config(name="transe", embedding_dim=32, margin=6.0), num_entities, num_relations)
        config = pretrain_config(num_negatives=16, batch_size=40, kgc_lr=0.02, num_epochs=150, eval_every=50,
                                patience=0, optimizer=optimizer)
        sampler = make_sampler("uniform", triples, num_entities, num_relations, config.num_negatives)
        train_kgc(model, triples, triples, index, objective_for(config, sampler), config, seed=0)
        mrr[optimizer] = evaluate_link_prediction(model, triples, index)["both"]["realistic"]["mrr"]
    assert mrr["lazy_adam"] > 0.9 and mrr["adam"] > 0.9, mrr


def test_lazy_adam_takes_clipping_and_several_processes_and_refuses_unknown_optimizers():
    pretrain_config(optimizer="lazy_adam", max_grad_norm=1.0, num_processes=2)  # both take sparse gradients
    with pytest.raises(ValueError, match="pretrain.optimizer"):
        pretrain_config(optimizer="sgd")


def test_clipping_a_sparse_row_gradient_by_hand():
    # rows 1 and 3 touched (row 3 twice: 1 + 1 = 2 in its first entry), a dense bias beside: global norm
    # sqrt(3^2 + 2^2 + 0 + 0 + 4^2 + 2^2 ... ) computed below from the numbers themselves
    table = torch.nn.Parameter(torch.zeros(5, 2))
    bias = torch.nn.Parameter(torch.zeros(2))
    table.grad = torch.sparse_coo_tensor(torch.tensor([[1, 3, 3]]), torch.tensor([[3.0, 0.0], [1.0, 0.0], [1.0, 4.0]]),
                                         (5, 2), check_invariants=True)
    bias.grad = torch.tensor([0.0, 2.0])
    norm = (3.0 ** 2 + 2.0 ** 2 + 4.0 ** 2 + 2.0 ** 2) ** 0.5  # rows (3, 0), (2, 4) and the bias (0, 2): 33 ** 0.5
    clip_gradients([table, bias], 1.0)
    scale = 1.0 / (norm + 1e-6)
    expected = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 0.0], [2.0, 4.0], [0.0, 0.0]]) * scale
    torch.testing.assert_close(table.grad.to_dense(), expected)
    torch.testing.assert_close(bias.grad, torch.tensor([0.0, 2.0]) * scale)


def test_clipping_sparse_gradients_equals_clipping_their_dense_form():
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 50, (40,), generator=generator)
    values = torch.randn(40, 6, generator=generator)
    dense_grad = torch.zeros(50, 6).index_add_(0, rows, values)
    other_grad = torch.randn(6, generator=generator)
    for max_norm in (0.5, 1e3):  # one that clips, one that leaves the gradients alone
        sparse_table, dense_table = torch.nn.Parameter(torch.zeros(50, 6)), torch.nn.Parameter(torch.zeros(50, 6))
        sparse_other, dense_other = torch.nn.Parameter(torch.zeros(6)), torch.nn.Parameter(torch.zeros(6))
        sparse_table.grad = torch.sparse_coo_tensor(rows[None], values, (50, 6), check_invariants=True)
        dense_table.grad, sparse_other.grad, dense_other.grad = dense_grad.clone(), other_grad.clone(), other_grad.clone()
        clip_gradients([sparse_table, sparse_other], max_norm)
        torch.nn.utils.clip_grad_norm_([dense_table, dense_other], max_norm)
        torch.testing.assert_close(sparse_table.grad.to_dense(), dense_table.grad)
        torch.testing.assert_close(sparse_other.grad, dense_other.grad)


@pytest.mark.parametrize("form", ["compiled", "pytorch"])
def test_row_adagrad_moves_only_touched_rows_by_its_rule_by_hand(form, monkeypatch):
    if form == "pytorch":
        monkeypatch.setenv("DHNS_NATIVE", "0")
    elif not native.available():
        pytest.skip("no C compiler: only the PyTorch form exists here")
    # one accumulator per row: s_r += mean_j g_rj^2, row r -= lr g_r / (sqrt(s_r) + eps)
    table = nn.Embedding(3, 2, sparse=True)
    with torch.no_grad():
        table.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    bias = nn.Parameter(torch.tensor([0.5]))
    optimizer = RowAdagrad([table.weight], [bias], lr=0.1, dense_lr=0.01)
    steps = [(torch.tensor([0, 2, 0]), torch.tensor([[1.0, -2.0], [0.5, 0.25], [1.0, 0.0]])),  # row 0 twice
             (torch.tensor([0]), torch.tensor([[-3.0, 1.0]]))]
    for ids, coefficients in steps:
        optimizer.zero_grad()
        ((table(ids) * coefficients).sum() + bias.sum()).backward()
        optimizer.step()
    # row 0: step 1 gradient (2, -2) (two lookups summed), mean square 4; step 2 gradient (-3, 1), mean square 5
    s1, s2 = 4.0, 4.0 + 5.0
    row0 = [1.0 - 0.1 * 2.0 / math.sqrt(s1) - 0.1 * -3.0 / math.sqrt(s2),
            2.0 - 0.1 * -2.0 / math.sqrt(s1) - 0.1 * 1.0 / math.sqrt(s2)]
    row2 = [5.0 - 0.1 * 0.5 / math.sqrt(0.15625), 6.0 - 0.1 * 0.25 / math.sqrt(0.15625)]  # mean of 0.25, 0.0625
    weight = table.weight.detach()
    assert weight[0].tolist() == pytest.approx(row0, rel=1e-6)
    assert weight[2].tolist() == pytest.approx(row2, rel=1e-6)
    assert weight[1].tolist() == [3.0, 4.0]  # never touched
    assert optimizer.state[table.weight]["sum"].tolist() == pytest.approx([s2, 0.0, 0.15625])
    assert bias.item() == pytest.approx(0.5 - 2 * 0.01, rel=1e-5)  # Adam's first steps move by lr each


def test_compiled_row_adagrad_takes_the_pytorch_forms_steps(monkeypatch):
    """Many rows of a wide table, a few steps: the one-pass update against the three-temporary PyTorch form (the
    mean square is summed in another order, so equal to rounding), for 1 and 3 threads (bitwise alike)."""
    if not native.available():
        pytest.skip("no C compiler: only the PyTorch form exists here")
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(500, 48, generator=generator)
    steps = [(torch.randint(500, (300,), generator=generator), torch.randn(300, 48, generator=generator))
             for _ in range(3)]

    def train(native_on: str, threads: int) -> tuple[torch.Tensor, torch.Tensor]:
        monkeypatch.setenv("DHNS_NATIVE", native_on)
        table = nn.Embedding(500, 48, sparse=True)
        with torch.no_grad():
            table.weight.copy_(start)
        optimizer = RowAdagrad([table.weight], [], lr=0.1, dense_lr=0.01)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for ids, coefficients in steps:
                optimizer.zero_grad()
                (table(ids) * coefficients).sum().backward()
                optimizer.step()
        finally:
            torch.set_num_threads(before)
        return table.weight.detach(), optimizer.state[table.weight]["sum"]

    compiled_one, compiled_three, plain = train("1", 1), train("1", 3), train("0", 1)
    assert all(torch.equal(a, b) for a, b in zip(compiled_one, compiled_three))
    torch.testing.assert_close(compiled_one[0], plain[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(compiled_one[1], plain[1], rtol=1e-6, atol=0.0)
    assert not torch.equal(compiled_one[0], start)


@pytest.mark.parametrize("ids, rows, sums", [
    ([1, 3, 4], [1, 3, 4], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),  # distinct and sorted: used as they are
    ([3, 1, 3], [1, 3], [[3.0, 4.0], [6.0, 8.0]]),  # repeated and unsorted: summed per row
    ([4, 1, 3], [1, 3, 4], [[3.0, 4.0], [5.0, 6.0], [1.0, 2.0]]),
])
def test_summed_rows_of_a_sparse_lookup_gradient(ids, rows, sums):
    table = nn.Embedding(5, 2, sparse=True)
    (table(torch.tensor(ids)) * torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])).sum().backward()
    got_rows, got_sums = summed_rows(table.weight.grad)
    assert got_rows.tolist() == rows and got_sums.tolist() == sums


def test_row_adagrad_is_chosen_by_params_and_learns_a_functional_graph():
    num_sources, num_relations = 20, 3
    num_entities = num_sources * (1 + num_relations)
    triples = functional_graph(num_sources, num_relations)
    index = build_filter_index(triples, num_entities)
    torch.manual_seed(0)
    model = KGCModel(model_config(name="transe", embedding_dim=32, margin=6.0), num_entities, num_relations)
    config = pretrain_config(num_negatives=16, batch_size=40, kgc_lr=0.02, num_epochs=150, eval_every=50, patience=0,
                            optimizer="row_adagrad", row_adagrad_lr=0.3)
    assert isinstance(kgc_optimizer(model, config), RowAdagrad) and model.sparse_entity_gradients
    sampler = make_sampler("uniform", triples, num_entities, num_relations, config.num_negatives)
    train_kgc(model, triples, triples, index, objective_for(config, sampler), config, seed=0)
    assert evaluate_link_prediction(model, triples, index)["both"]["realistic"]["mrr"] > 0.9
