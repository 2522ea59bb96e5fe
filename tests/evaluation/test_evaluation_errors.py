"""Failure modes of the evaluator: bad scores, bad inputs, and device handling."""

from __future__ import annotations

import math

import pytest
import torch

from dhns.evaluation import LinkScorer, build_filter_index, evaluate_link_prediction, rank_triples


class _ConstantScorer:
    def __init__(self, num_entities: int, fill: float = 0.0, nan_at: int | None = None, width: int | None = None):
        self.num_entities = num_entities
        self.fill = fill
        self.nan_at = nan_at
        self.width = num_entities if width is None else width

    def _scores(self, batch: int, device: torch.device) -> torch.Tensor:
        scores = torch.arange(self.width, dtype=torch.float32, device=device).repeat(batch, 1)  # (B, W)
        if self.nan_at is not None:
            scores[:, self.nan_at] = math.nan
        return scores

    def score_tails(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        return self._scores(heads.shape[0], heads.device)

    def score_heads(self, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        return self._scores(tails.shape[0], tails.device)


def test_fake_scorers_satisfy_the_protocol(make_random_scorer) -> None:
    assert isinstance(make_random_scorer(5, 0), LinkScorer)
    assert isinstance(_ConstantScorer(5), LinkScorer)


def test_nan_in_unfiltered_candidate_raises_with_context() -> None:
    index = build_filter_index(torch.tensor([[0, 0, 1]]), num_entities=4)
    with pytest.raises(ValueError, match=r"head side.*NaN scores in 2 of 2 rows"):
        evaluate_link_prediction(_ConstantScorer(4, nan_at=3), torch.tensor([[0, 0, 1], [2, 0, 1]]), index)


def test_nan_only_in_filtered_candidate_is_fine() -> None:
    # Entity 3 is NaN, but it is a known tail of (0, 0) and a known head of (0, 1): filtered on both sides.
    index = build_filter_index(torch.tensor([[0, 0, 1], [0, 0, 3], [3, 0, 1]]), num_entities=4)
    ranks = rank_triples(_ConstantScorer(4, nan_at=3), torch.tensor([[0, 0, 1]]), index)
    assert ranks.ranks["tail"]["optimistic"].tolist() == [2.0]  # only entity 2 (score 2) beats entity 1
    assert ranks.ranks["head"]["optimistic"].tolist() == [3.0]  # entities 1 and 2 beat entity 0


def test_wrong_score_shape_and_entity_count_raise() -> None:
    index = build_filter_index(torch.tensor([[0, 0, 1]]), num_entities=4)
    with pytest.raises(ValueError, match="score_heads"):
        evaluate_link_prediction(_ConstantScorer(4, width=3), torch.tensor([[0, 0, 1]]), index)
    with pytest.raises(ValueError, match="entities"):
        evaluate_link_prediction(_ConstantScorer(5), torch.tensor([[0, 0, 1]]), index)


def test_bad_inputs_raise() -> None:
    index = build_filter_index(torch.tensor([[0, 0, 1]]), num_entities=4)
    scorer = _ConstantScorer(4)
    with pytest.raises(ValueError):
        evaluate_link_prediction(scorer, torch.empty(0, 3, dtype=torch.long), index)
    with pytest.raises(ValueError):
        evaluate_link_prediction(scorer, torch.tensor([[0, 0, 4]]), index)
    with pytest.raises(ValueError):
        evaluate_link_prediction(scorer, torch.tensor([[0, 0, 1]]), index, batch_size=0)
    with pytest.raises(ValueError):
        evaluate_link_prediction(scorer, torch.tensor([[0, 0, 1]]), index, ks=())


def test_self_loops_are_counted_and_ranked() -> None:
    index = build_filter_index(torch.tensor([[2, 0, 2], [1, 0, 1]]), num_entities=4)
    result = evaluate_link_prediction(_ConstantScorer(4), torch.tensor([[2, 0, 2], [1, 0, 1], [0, 0, 3]]), index)
    assert result["num_self_loops"] == 2
    assert result["num_triples"] == 3
    # Scores are the entity ids: entity 2 is beaten by 3 only, entity 1 by 2 and 3, entity 3 by none.
    assert result["tail"]["optimistic"]["mean_rank"] == pytest.approx((2 + 3 + 1) / 3)


def test_runs_under_inference_mode_and_returns_cpu_ranks() -> None:
    seen = []

    class _Probe(_ConstantScorer):
        def score_tails(self, heads, relations):
            seen.append(torch.is_inference_mode_enabled())
            return super().score_tails(heads, relations)

    index = build_filter_index(torch.tensor([[0, 0, 1]]), num_entities=4)
    ranks = rank_triples(_Probe(4), torch.tensor([[0, 0, 1]]), index)
    assert seen == [True]
    assert ranks.ranks["tail"]["realistic"].device.type == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_scores_give_the_same_ranks_as_cpu(make_table_scorer) -> None:
    gen = torch.Generator().manual_seed(0)
    tail_table = torch.randint(0, 5, (30, 2, 30), generator=gen).float()
    head_table = torch.randint(0, 5, (2, 30, 30), generator=gen).float()
    known = torch.stack(
        [torch.randint(30, (200,), generator=gen), torch.randint(2, (200,), generator=gen),
         torch.randint(30, (200,), generator=gen)], dim=1
    )
    test = known[:60]
    index = build_filter_index(known, 30)  # built on CPU: the evaluator moves it
    cpu = rank_triples(make_table_scorer(tail_table, head_table), test, index, batch_size=16)
    gpu = rank_triples(
        make_table_scorer(tail_table.cuda(), head_table.cuda()), test.cuda(), index, batch_size=16
    )
    for side in cpu.ranks:
        for policy in cpu.ranks[side]:
            assert gpu.ranks[side][policy].device.type == "cpu"
            assert torch.equal(cpu.ranks[side][policy], gpu.ranks[side][policy])
        assert gpu.num_candidates[side].device.type == "cpu"
        assert torch.equal(cpu.num_candidates[side], gpu.num_candidates[side])
