"""Scoring sampled candidates without gathering them (`compare_gathered`), and every entity (`compare_all`).

Every expected value is the plain form written out here: candidates gathered as a (B, k, w) tensor and the
scorer's formula applied to them, differentiated by autograd. Each test runs twice: with the compiled
loops of `dhns.native` and with their PyTorch form (`GatheredDistance`, `DHNS_NATIVE=0`).
"""

import pytest
import torch

from configs import model_config
from dhns import native
from dhns.models.interactions import GatheredDistance, make_interaction
from dhns.models.kgc import KGCModel
from dhns.sampling import make_sampler
from dhns.training.step import precision_context
from dhns.training.objective import Objective, batch_loss, negative_weights, sigmoid_loss

DISTANCE_SCORERS = ["transe", "rotate"]
MARGIN = 3.0


@pytest.fixture(autouse=True, params=["native", "torch"])
def backend(request, monkeypatch):
    monkeypatch.setenv("DHNS_NATIVE", "1" if request.param == "native" else "0")
    if request.param == "native" and not native.available():
        pytest.skip("no C compiler: the compiled loops are not built here")
    return request.param


def plain_scores(name: str, queries: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The scorers' formulas on gathered candidates: TransE gamma - ||q - c||_1, RotatE gamma - sum |q - c|."""
    candidates = table[index]  # (B, k, w)
    difference = queries.unsqueeze(1) - candidates
    if name == "transe":
        return MARGIN - difference.abs().sum(dim=-1)
    real, imag = difference.chunk(2, dim=-1)
    return MARGIN - torch.sqrt(real**2 + imag**2 + 1e-12).sum(dim=-1)


def per_thread_chunk(rows: int, negatives: int, width: int) -> int:
    """The `gather_chunk` that makes chunks of about `rows` queries (the budget is per thread)."""
    return max(1, rows * negatives * width // torch.get_num_threads())


def leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [tensor.detach().clone().requires_grad_(True) for tensor in tensors]


def tiny_case(name: str, dtype: torch.dtype = torch.float32, batch: int = 13, negatives: int = 6, rows: int = 5):
    """Queries, a table and ids with many repeats (5 rows for 78 draws), so index_add_ must accumulate."""
    generator = torch.Generator().manual_seed(0)
    width = make_interaction(name, 4, MARGIN).entity_width
    queries = torch.randn(batch, width, generator=generator, dtype=dtype)
    table = torch.randn(rows, width, generator=generator, dtype=dtype)
    index = torch.randint(rows, (batch, negatives), generator=generator)
    index[0] = 2  # one row scoring the same candidate k times
    return queries, table, index


@pytest.mark.parametrize("chunk_rows", [1, 4, 100], ids=["row_by_row", "uneven_chunks", "one_chunk"])
@pytest.mark.parametrize("name", DISTANCE_SCORERS)
def test_scores_and_gradients_match_the_plain_form(name, chunk_rows):
    interaction = make_interaction(name, 4, MARGIN)
    queries, table, index = tiny_case(name)
    interaction.gather_chunk = per_thread_chunk(chunk_rows, index.shape[1], table.shape[1])
    grad_scores = torch.randn(index.shape, generator=torch.Generator().manual_seed(1))

    fused_q, fused_t = leaves(queries, table)
    fused = interaction.compare_gathered(fused_q, fused_t, index)
    fused.backward(grad_scores)
    plain_q, plain_t = leaves(queries, table)
    plain = plain_scores(name, plain_q, plain_t, index)
    plain.backward(grad_scores)

    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_q.grad, plain_q.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_t.grad, plain_t.grad, rtol=1e-5, atol=1e-5)


def test_repeated_candidates_accumulate_their_gradients():
    """Hand-worked: one table row t scored by every query k times gets k * sum_b sign(t - q_b) per entry."""
    interaction = make_interaction("transe", 2, MARGIN)
    interaction.gather_chunk = per_thread_chunk(2, 3, 2)  # the sum spans chunks
    queries = torch.tensor([[0.0, 0.0], [2.0, -1.0], [1.5, 3.0]])
    table = torch.tensor([[1.0, 1.0]], requires_grad=True)
    index = torch.zeros(3, 3, dtype=torch.long)
    distances = MARGIN - interaction.compare_gathered(queries, table, index)
    distances.sum().backward()
    # sign(t - q): [+, +], [-, +], [-, -] -> per entry [-1, 1], times k = 3
    torch.testing.assert_close(table.grad, torch.tensor([[-3.0, 3.0]]))
    torch.testing.assert_close(distances.detach(), torch.tensor([[2.0] * 3, [3.0] * 3, [2.5] * 3]))


@pytest.mark.parametrize("name", DISTANCE_SCORERS)
def test_compiled_table_gradient_adds_each_rows_terms_in_candidate_order(name, backend):
    """Bitwise, against float32 arithmetic written out in plain Python: every row of the table gradient is
    0 + term(b0, j0) + term(b1, j1) + ... over the (b, j) that picked it, in ascending order (the order the
    compiled backward keeps after grouping the pairs by row), and rows nobody picked stay 0."""
    if backend != "native":
        pytest.skip("PyTorch's index_add_ may order its sums otherwise")
    import numpy as np

    f32 = np.float32
    interaction = make_interaction(name, 4, MARGIN)
    queries, table, index = tiny_case(name, batch=20, negatives=7, rows=9)
    index[index == 8] = 0  # row 8 is never picked
    grad_scores = torch.randn(index.shape, generator=torch.Generator().manual_seed(6))
    q, t = leaves(queries, table)
    interaction.compare_gathered(q, t, index).backward(grad_scores)
    scale = [[f32(-g) for g in row] for row in grad_scores.tolist()]  # d score / d distance is -1
    width = table.shape[1]
    expected = [[f32(0.0)] * width for _ in range(table.shape[0])]
    query_rows, table_rows = queries.numpy(), table.numpy()
    for b, row in enumerate(index.tolist()):
        for j, entity in enumerate(row):
            difference = [f32(c - x) for c, x in zip(table_rows[entity], query_rows[b])]
            if name == "transe":
                terms = [f32(f32(1.0 if d > 0 else -1.0 if d < 0 else 0.0) * scale[b][j]) for d in difference]
            else:
                half = width // 2
                real, imag = difference[:half], difference[half:]
                moduli = [np.sqrt(f32(f32(f32(re * re) + f32(im * im)) + f32(interaction.native_epsilon)))
                          for re, im in zip(real, imag)]
                factors = [f32(f32(f32(1.0) / m) * scale[b][j]) for m in moduli]
                terms = [f32(difference[i] * factors[i % half]) for i in range(width)]
            expected[entity] = [f32(total + term) for total, term in zip(expected[entity], terms)]
    assert torch.equal(t.grad, torch.tensor(np.array(expected, dtype=np.float32)))
    assert not t.grad[8].any()


@pytest.mark.parametrize("name", DISTANCE_SCORERS)
def test_a_candidate_id_outside_the_table_is_an_index_error(name):
    """The compiled loops read and write rows by id: an id past the table must fail as PyTorch's gather does."""
    interaction = make_interaction(name, 4, MARGIN)
    queries, table, index = tiny_case(name, rows=5)
    index[3, 2] = 5
    q, t = leaves(queries, table)
    with pytest.raises(IndexError):
        interaction.compare_gathered(q, t, index).sum().backward()
    if native.available():
        grad = torch.ones(index.shape)
        with pytest.raises(IndexError, match="outside the table's 5 rows"):
            native.gathered_distance_backward(interaction.native_kind, queries, table, index, grad, 0.0, False, True)


@pytest.mark.parametrize("name", DISTANCE_SCORERS)
def test_gradcheck_in_float64(name):
    interaction = make_interaction(name, 4, MARGIN)
    queries, table, index = tiny_case(name, torch.float64, batch=5, negatives=3, rows=4)
    differences = table[index] - queries.unsqueeze(1)
    assert differences.abs().min() > 1e-3  # |x| is not differentiable at 0: keep the finite differences away
    queries, table = leaves(queries, table)
    assert torch.autograd.gradcheck(
        lambda q, t: GatheredDistance.apply(interaction, q, t, index, 2), (queries, table), eps=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("name", DISTANCE_SCORERS)
def test_a_table_without_gradient_gives_the_queries_theirs(name):
    interaction = make_interaction(name, 4, MARGIN)
    queries, table, index = tiny_case(name)
    (fused_q,) = leaves(queries)
    interaction.compare_gathered(fused_q, table, index).sum().backward()
    (plain_q,) = leaves(queries)
    plain_scores(name, plain_q, table, index).sum().backward()
    torch.testing.assert_close(fused_q.grad, plain_q.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", DISTANCE_SCORERS)
def test_mixed_dtypes_compute_as_the_plain_form_does(name):
    """A bf16 table against fp32 queries is compared in fp32, as the plain form's subtraction promotes it.

    The table's gradient is summed in fp32 and rounded to bf16 once (the plain form rounds every repeated
    id's addition to bf16, which is why the expected gradient is the fp32 one rounded).
    """
    interaction = make_interaction(name, 4, MARGIN)
    queries, table, index = tiny_case(name)
    fused_q, fused_t = leaves(queries, table.bfloat16())
    fused = interaction.compare_gathered(fused_q, fused_t, index)
    fused.sum().backward()
    plain_q, plain_t = leaves(queries, table.bfloat16().float())
    plain = plain_scores(name, plain_q, plain_t, index)
    plain.sum().backward()
    assert fused.dtype == torch.float32 and fused_t.grad.dtype == torch.bfloat16
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_q.grad, plain_q.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_t.grad, plain_t.grad.bfloat16())


def small_model(name: str, with_text: bool) -> tuple[KGCModel, torch.Tensor]:
    torch.manual_seed(0)
    num_entities, num_relations = 30, 3
    features = None
    if with_text:
        present = torch.rand(num_entities) < 0.7
        features = {"text": (torch.randn(num_entities, 8) * present[:, None], present)}
    model = KGCModel(model_config(name=name, embedding_dim=6, margin=MARGIN), num_entities, num_relations, features)
    if with_text:
        with torch.no_grad():
            model.entities.attention.normal_()  # zero attention would weigh the views equally
    generator = torch.Generator().manual_seed(1)
    triples = torch.stack([torch.randint(num_entities, (40,), generator=generator),
                           torch.randint(num_relations, (40,), generator=generator),
                           torch.randint(num_entities, (40,), generator=generator)], dim=1)
    return model, triples


def plain_training_loss(model: KGCModel, positives: torch.Tensor, negatives) -> torch.Tensor:
    """The self-adversarial loss with each corrupted triple scored on its own (`score_triples`)."""
    corrupted = positives.unsqueeze(1).repeat(1, negatives.entities.shape[1], 1)  # (B, k, 3)
    side = torch.where(negatives.corrupt_tail, 2, 0)  # (B,)
    corrupted.scatter_(2, side.view(-1, 1, 1).expand(-1, corrupted.shape[1], 1), negatives.entities.unsqueeze(-1))
    negative_scores = model.score_triples(corrupted)
    weights = negative_weights(negative_scores, negatives.valid, 1.0)
    return sigmoid_loss(model.score_triples(positives), negative_scores, weights)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("with_text", [False, True], ids=["plain_lookup", "fused"])
@pytest.mark.parametrize("name", DISTANCE_SCORERS)
def test_training_loss_and_model_gradients_match_the_plain_form(name, with_text, precision):
    """`batch_loss` (the training path) against the same negatives scored triple by triple, under the
    precision the stages use (bf16 autocast in the train stage)."""
    model, triples = small_model(name, with_text)
    model.interaction.gather_chunk = per_thread_chunk(3, 8, model.interaction.entity_width)
    sampler = make_sampler("uniform", triples, model.num_entities, model.num_relations, 8)
    positives = triples[:10]
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    with precision_context(precision, torch.device("cpu")):
        objective = Objective(sampler, adversarial_temperature=1.0, regularizer="l2", regularization=0.0,
                              max_grad_norm=0.0, precision="fp32")
        fused_loss = batch_loss(model, objective, positives, torch.Generator().manual_seed(2))
        fused_grads = torch.autograd.grad(fused_loss, parameters)
        negatives = sampler.sample(positives, torch.Generator().manual_seed(2))  # the negatives batch_loss drew
        plain_loss = plain_training_loss(model, positives, negatives)
        plain_grads = torch.autograd.grad(plain_loss, parameters)
    assert torch.isfinite(fused_loss) and all(torch.isfinite(grad).all() for grad in fused_grads)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if precision == "fp32" else {"rtol": 2e-2, "atol": 1e-3}
    torch.testing.assert_close(fused_loss, plain_loss, **tolerance)
    for parameter_name, fused, plain in zip((n for n, p in model.named_parameters() if p.requires_grad),
                                            fused_grads, plain_grads):
        if precision == "bf16":  # bf16 keeps 8 bits: a sum of rounded products is off by ~1% of its terms' scale
            tolerance = {"rtol": 2e-2, "atol": 1e-2 * float(plain.abs().max())}
        torch.testing.assert_close(fused, plain, **tolerance, msg=lambda text, key=parameter_name: f"{key}: {text}")


@pytest.mark.parametrize("with_text", [False, True], ids=["plain_lookup", "fused"])
@pytest.mark.parametrize("name", DISTANCE_SCORERS)
def test_no_candidate_sized_tensor_is_kept_for_backward(name, with_text):
    """The point of the fused form: autograd saves nothing of the candidates' size."""
    model, triples = small_model(name, with_text)
    negatives = torch.randint(model.num_entities, (10, 16))
    # the plain form keeps (B, k, d) tensors (RotatE's real and imaginary differences are d wide each)
    candidate_elements = negatives.numel() * model.config.embedding_dim
    saved: list[int] = []

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        model.score_corrupted(triples[:10], negatives, torch.rand(10) < 0.5)
    assert saved and max(saved) < candidate_elements, (max(saved), candidate_elements)


@pytest.mark.parametrize("name", DISTANCE_SCORERS)
def test_ranking_every_entity_matches_the_plain_form(name):
    """`compare_all` without autograd (evaluation) against the broadcast formula."""
    interaction = make_interaction(name, 5, MARGIN)
    generator = torch.Generator().manual_seed(3)
    queries = torch.randn(7, interaction.entity_width, generator=generator)
    entities = torch.randn(131, interaction.entity_width, generator=generator)  # not a multiple of any block
    with torch.no_grad():
        scores = interaction.compare_all(queries, entities)
    expected = plain_scores(name, queries, entities, torch.arange(131).expand(7, -1))
    if name == "rotate":  # ranking takes no epsilon inside the square root
        real, imag = (queries.unsqueeze(1) - entities).chunk(2, dim=-1)
        expected = MARGIN - torch.sqrt(real**2 + imag**2).sum(dim=-1)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", DISTANCE_SCORERS)
def test_results_do_not_depend_on_the_thread_count(name, backend):
    """Bitwise: every output of the compiled loops is written by one thread and summed in a fixed order."""
    if backend != "native":
        pytest.skip("PyTorch's own reductions may split by thread")
    interaction = make_interaction(name, 4, MARGIN)
    queries, table, index = tiny_case(name, batch=50, negatives=9, rows=7)
    grad_scores = torch.randn(index.shape, generator=torch.Generator().manual_seed(4))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            q, t = leaves(queries, table)
            scores = interaction.compare_gathered(q, t, index)
            scores.backward(grad_scores)
            with torch.no_grad():
                ranked = interaction.compare_all(queries, table)
            results.append((scores.detach(), q.grad, t.grad, ranked))
    finally:
        torch.set_num_threads(before)
    for one, three in zip(*results):
        assert torch.equal(one, three)
