"""Scorers, fusion and checkpoints."""

import math

import pytest
import torch

from configs import model_config
from dhns.models.interactions import INTERACTIONS, make_interaction
from dhns.models.kgc import KGCModel, load_model, save_model


@pytest.mark.parametrize("name", sorted(INTERACTIONS))
def test_compare_all_matches_pairwise_compare(name):
    torch.manual_seed(0)
    interaction = make_interaction(name, embedding_dim=6, margin=3.0)
    queries = torch.randn(4, interaction.entity_width)
    entities = torch.randn(9, interaction.entity_width)
    expected = torch.stack([torch.stack([interaction.compare(q, e) for e in entities]) for q in queries])
    torch.testing.assert_close(interaction.compare_all(queries, entities), expected)


@pytest.mark.parametrize("name", sorted(INTERACTIONS))
def test_head_query_scores_the_same_triple_as_tail_query(name):
    """Ranking heads must score (h, r, t) exactly as ranking tails does."""
    torch.manual_seed(1)
    interaction = make_interaction(name, embedding_dim=5, margin=2.0)
    heads, tails = torch.randn(7, interaction.entity_width), torch.randn(7, interaction.entity_width)
    relations = torch.randn(7, interaction.relation_width)
    via_tail = interaction.compare(interaction.tail_query(heads, relations), tails)
    via_head = interaction.compare(interaction.head_query(relations, tails), heads)
    torch.testing.assert_close(via_tail, via_head)


def test_scorers_match_their_formulas():
    h, r, t = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.5]), torch.tensor([2.0, 0.0])
    transe = make_interaction("transe", 2, margin=4.0)
    assert transe.compare(transe.tail_query(h, r), t).item() == pytest.approx(4.0 - (0.5 + 1.5))
    distmult = make_interaction("distmult", 2, margin=0.0)
    assert distmult.compare(distmult.tail_query(h, r), t).item() == pytest.approx(1.0)
    rotate = make_interaction("rotate", 1, margin=1.0)
    # h = 1 + 0i rotated by pi/2 is 0 + 1i; distance to t = 0 + 0i is 1.
    score = rotate.compare(rotate.tail_query(torch.tensor([1.0, 0.0]), torch.tensor([math.pi / 2])), torch.zeros(2))
    assert score.item() == pytest.approx(0.0, abs=1e-6)


def test_fusion_uses_only_present_modalities():
    torch.manual_seed(2)
    text = torch.randn(4, 3)
    present = torch.tensor([True, False, True, False])
    model = KGCModel(model_config(name="distmult", embedding_dim=5), 4, 2, {"text": (text * present[:, None], present)})
    with torch.no_grad():
        model.entities.attention.normal_()
    fused = model.entities(torch.arange(4))
    structural = model.entities.structural.weight
    torch.testing.assert_close(fused[1], structural[1])  # no text: the structural embedding alone
    torch.testing.assert_close(fused[3], structural[3])
    projected = model.entities.projections["text"](text[0])
    logits = torch.stack([torch.tanh(structural[0]), torch.tanh(projected)]) @ model.entities.attention
    weights = torch.softmax(logits, dim=0)
    torch.testing.assert_close(fused[0], weights[0] * structural[0] + weights[1] * projected)


@pytest.mark.parametrize("with_text", [True, False], ids=["fused", "plain_lookup"])
@pytest.mark.parametrize("name", sorted(INTERACTIONS))
def test_score_corrupted_agrees_with_score_triples(name, with_text):
    torch.manual_seed(3)
    features = {"text": (torch.randn(10, 4), torch.ones(10, dtype=torch.bool))} if with_text else None
    model = KGCModel(model_config(name=name, embedding_dim=4), 10, 3, features)
    positives = torch.tensor([[0, 1, 2], [3, 0, 4], [5, 2, 6]])
    negatives = torch.tensor([[7, 8], [9, 1], [2, 2]])
    corrupt_tail = torch.tensor([True, False, True])
    pos, neg = model.score_corrupted(positives, negatives, corrupt_tail)
    torch.testing.assert_close(pos, model.score_triples(positives))
    corrupted = positives.unsqueeze(1).repeat(1, 2, 1)
    corrupted[0, :, 2], corrupted[1, :, 0], corrupted[2, :, 2] = negatives[0], negatives[1], negatives[2]
    torch.testing.assert_close(neg, model.score_triples(corrupted))


def test_rank_scores_match_triple_scores():
    torch.manual_seed(4)
    model = KGCModel(model_config(name="rotate", embedding_dim=3), 6, 2, None).eval()
    with torch.no_grad():
        tails = model.score_tails(torch.tensor([0, 1]), torch.tensor([1, 0]))
        heads = model.score_heads(torch.tensor([1, 0]), torch.tensor([5, 4]))
        expected_tails = model.score_triples(torch.tensor([[[0, 1, e] for e in range(6)], [[1, 0, e] for e in range(6)]]))
        expected_heads = model.score_triples(torch.tensor([[[e, 1, 5] for e in range(6)], [[e, 0, 4] for e in range(6)]]))
    torch.testing.assert_close(tails, expected_tails)
    torch.testing.assert_close(heads, expected_heads)


def test_checkpoint_round_trip_restores_scores(tmp_path):
    torch.manual_seed(5)
    features = {"text": (torch.randn(8, 3), torch.ones(8, dtype=torch.bool))}
    model = KGCModel(model_config(name="transe", embedding_dim=4), 8, 2, features).eval()
    save_model(model, tmp_path / "m")
    restored = load_model(tmp_path / "m", features).eval()
    triples = torch.tensor([[0, 1, 2], [3, 0, 7]])
    torch.testing.assert_close(restored.score_triples(triples), model.score_triples(triples))
    from safetensors.torch import load_file

    assert not any(key.startswith("entities.features_") for key in load_file(str(tmp_path / "m" / "model.safetensors")))
    with pytest.raises(ValueError, match="modalities"):
        load_model(tmp_path / "m", {})


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError, match="transe, distmult, rotate"):
        make_interaction("complex", 4, 1.0)


def fusion_model(seed: int) -> KGCModel:
    """A model with one modality that half the entities have, and a non-zero attention vector."""
    torch.manual_seed(seed)
    present = torch.tensor([True, False] * 4)
    model = KGCModel(model_config(name="transe", embedding_dim=4), 8, 2, {"text": (torch.randn(8, 3), present)})
    with torch.no_grad():
        model.entities.attention.normal_()
    return model


@pytest.mark.parametrize(("dtype", "softmax_dtype"), [(torch.float64, torch.float64), (torch.bfloat16, torch.float32)])
def test_fusion_keeps_a_converted_models_precision(dtype, softmax_dtype):
    """float64 stays float64 end to end; a reduced precision still takes its attention softmax in fp32."""
    model = fusion_model(6).to(dtype)
    triples = torch.tensor([[0, 1, 2], [3, 0, 4], [5, 1, 7]])
    scores = model.score_triples(triples)
    scores.sum().backward()
    assert scores.dtype == torch.promote_types(dtype, softmax_dtype)  # fused views carry the softmax's precision
    assert model.entities.attention.grad.dtype == dtype and model.entities.attention.grad.abs().sum() > 0
    ids = torch.arange(8)
    entities = model.entities
    weights = entities.attention_weights(entities.modality_embeddings(ids), entities.modality_presence(ids))
    assert weights.dtype == softmax_dtype
    if dtype == torch.float64:
        reference = fusion_model(6).score_triples(triples)  # the same model in float32
        torch.testing.assert_close(scores, reference.double(), rtol=1e-5, atol=1e-5)


def test_float32_fusion_is_bit_identical_to_the_fp32_formula():
    """The float32 path computes exactly softmax(tanh(e_m) @ w) over present views, summed view by view."""
    model = fusion_model(7)
    entities, ids = model.entities, torch.arange(8)
    views, present = entities.modality_embeddings(ids), entities.modality_presence(ids)
    names = entities.view_names
    logits = torch.stack([torch.tanh(views[name].float()) @ entities.attention for name in names], dim=-1)
    mask = torch.stack([present[name] for name in names], dim=-1)
    weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    expected = views[names[0]] * weights[..., :1]
    for index, name in enumerate(names[1:], start=1):
        expected = expected + views[name] * weights[..., index : index + 1]
    fused = entities(ids)
    assert fused.dtype == torch.float32 and torch.equal(fused, expected)
