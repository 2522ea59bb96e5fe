"""The peer comparison: ratios, floors and report from a fake peer; then tiny real runs with PyKEEN and TorchKGE."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from dhns.bench import main
from dhns.bench.comparison import run_peer_comparison
from dhns.bench.floors import evaluation_floor_bytes, training_floor_bytes
from dhns.bench.peer_report import format_peer_report
from dhns.bench.peers import EvaluationRun, PeerConfig, StructuralWeights, TrainingRun, training_stream
from dhns.bench.timing import memory_bandwidth

TINY = dict(dataset="synthetic:300:40:4", dim=8, batch_size=50, num_negatives=4, batches=2, warmup=1,
            eval_triples=20, eval_batch_size=16, device="cpu", threads=1, bandwidth_mib=8)
TINY_ARGS = ["--peer", "pykeen", "--dataset", "synthetic:300:40:4", "--peer-dim", "8", "--peer-batch-size", "50",
             "--peer-negatives", "4", "--batches", "2", "--peer-eval-triples", "20", "--eval-batch-size", "16",
             "--device", "cpu", "--threads", "1"]


class FakePeer:
    """Fixed times and metrics; records what the harness hands it."""

    name = "fake 0.1"
    notes = ("fake: no library behind it",)
    train_seconds, eval_seconds, mrr = 3.0, 0.5, 0.25

    def __init__(self) -> None:
        self.streams: list[torch.Tensor] = []
        self.weights: list[StructuralWeights] = []

    def train(self, model: str, stream: torch.Tensor) -> TrainingRun:
        self.streams.append(stream)
        return TrainingRun(seconds=self.train_seconds, triples=stream.shape[0], batches=2, mean_loss=None)

    def evaluate(self, weights: StructuralWeights, triples: torch.Tensor) -> EvaluationRun:
        self.weights.append(weights)
        return EvaluationRun(seconds=self.eval_seconds, mrr=self.mrr, hits_at_10=0.5)


def test_fake_peer_ratios_floors_and_report():
    fake, threads = FakePeer(), torch.get_num_threads()
    result = run_peer_comparison(PeerConfig(**TINY), peer_factory=lambda config, graph, device: fake)
    assert torch.get_num_threads() == threads and result["hardware"]["torch_threads"] == 1
    bandwidth = result["bandwidth"]["bytes_per_second"]
    for model, width in (("transe", 8), ("rotate", 16)):
        figures = result["models"][model]
        ours, peer = figures["training"]["dhns"], figures["training"]["peer"]
        assert ours["triples"] == peer["triples"] == 100 and ours["batches"] == 2  # 2 batches of 50, both sides
        assert peer["seconds_per_epoch"] == pytest.approx(3.0 * 300 / 100)
        assert figures["training"]["speedup"] == pytest.approx(3.0 / ours["seconds"])
        step_bytes = 2 * 4 * (50 * 4 * width + 50 * (2 * width + 8))  # candidates + h, r, t rows, both ways
        assert ours["floor_bytes"] == step_bytes
        assert peer["times_floor"] == pytest.approx(1.5 / (step_bytes / bandwidth))
        evaluation = figures["evaluation"]
        assert evaluation["speedup"] == pytest.approx(0.5 / evaluation["dhns"]["seconds"])
        assert evaluation["mrr_difference"] == pytest.approx(abs(evaluation["dhns"]["mrr"] - 0.25))
    graph_train = {tuple(row) for row in result_graph_train()}
    assert all(stream.shape == (100, 3) and {tuple(row) for row in stream.tolist()} <= graph_train
               for stream in fake.streams)
    assert [tuple(w.entities.shape) for w in fake.weights] == [(40, 8), (40, 16)]
    assert all(tuple(w.relations.shape) == (4, 8) for w in fake.weights)
    report = format_peer_report(result)
    speedup = result["models"]["transe"]["training"]["speedup"]
    assert f"| TransE | training triples/s |" in report and f"| {speedup:.2f}x |" in report
    assert "| RotatE | filtered MRR (realistic), our weights | " in report and "fake: no library behind it" in report
    json.dumps(result)  # JSON-ready


def result_graph_train() -> list[list[int]]:
    from dhns.bench.inputs import load_graph

    return load_graph(TINY["dataset"]).train.tolist()


def test_training_stream_holds_whole_epochs_or_exact_batches():
    train = torch.arange(30).reshape(10, 3)
    epochs = training_stream(train, batch_size=4, epochs=2, batches=None)
    assert torch.equal(torch.sort(epochs[:, 0]).values, torch.sort(torch.cat([train[:, 0]] * 2)).values)
    short = training_stream(train, batch_size=4, epochs=1, batches=4)  # 16 rows: more than one epoch
    assert short.shape == (16, 3) and torch.equal(torch.sort(short[:10, 0]).values, train[:, 0])


def test_floors_by_hand():
    assert training_floor_bytes(2000, 64, 200, 200) == 2 * 4 * (2000 * 64 * 200 + 2000 * 600)
    # 10 test triples in chunks of 4: 3 chunks per side; table 100 x 4 per chunk; 20 queries x 100 scores
    assert evaluation_floor_bytes(10, 100, 4, 4) == 4 * (6 * 100 * 4 + 20 * 100)


def test_memory_bandwidth_is_positive_and_the_best_rate():
    rates = memory_bandwidth(torch.device("cpu"), mib=4, reps=2)
    assert rates["copy_bytes_per_second"] > 0 and rates["add_bytes_per_second"] > 0
    assert rates["bytes_per_second"] == max(rates["copy_bytes_per_second"], rates["add_bytes_per_second"])


def test_missing_peer_library_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pykeen", None)  # import pykeen now fails as if it were not installed
    monkeypatch.delitem(sys.modules, "dhns.bench.pykeen_side", raising=False)
    assert main(TINY_ARGS) == 2
    assert "pip install -e .[peers]" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--dim", "8"], ["--eval"], ["--sweep"], ["--peer-models", "distmult"]])
def test_peer_rejects_options_that_would_be_ignored(extra, capsys):
    assert main(TINY_ARGS + extra) == 2
    assert "dhns.bench:" in capsys.readouterr().err


def test_pykeen_holds_our_weights_and_ranks_like_us(tmp_path, capsys):
    pytest.importorskip("pykeen")
    from dhns.bench.pykeen_side import load_structural_weights, PyKEENSide
    from dhns.bench.inputs import load_graph

    out = tmp_path / "peers.json"  # TransE only and no warm-up: PyKEEN's gc.collect() per epoch is slow in pytest
    assert main(TINY_ARGS + ["--peer-models", "transe", "--warmup", "0", "--json", str(out)]) == 0
    assert "| TransE | filtered MRR" in capsys.readouterr().out
    result = json.loads(out.read_text())
    for model in ("transe",):
        figures = result["models"][model]
        for side in ("dhns", "peer"):
            for key in ("triples_per_second", "seconds_per_epoch", "times_floor"):
                value = figures["training"][side][key]
                assert math.isfinite(value) and value > 0, (model, side, key)
            assert figures["evaluation"][side]["seconds"] > 0
    assert result["models"]["transe"]["evaluation"]["mrr_difference"] < 1e-5  # same weights, same scores

    # the weight copy, checked against scores computed here from our layout
    graph = load_graph(TINY["dataset"])
    side = PyKEENSide(PeerConfig(**TINY), graph, torch.device("cpu"))
    generator = torch.Generator().manual_seed(3)
    triples = graph.train[:7]
    heads, relations, tails = triples.unbind(dim=1)
    for model, width in (("transe", 8), ("rotate", 16)):
        weights = StructuralWeights(model, torch.randn(40, width, generator=generator),
                                    torch.randn(4, 8, generator=generator))
        kge = side.model(model)
        load_structural_weights(kge, weights)
        if model == "transe":
            expected = -(weights.entities[heads] + weights.relations[relations] - weights.entities[tails]).abs().sum(-1)
        else:
            complex_entities = torch.complex(*weights.entities.chunk(2, dim=-1))
            rotation = torch.polar(torch.ones(4, 8), weights.relations)
            difference = complex_entities[heads] * rotation[relations] - complex_entities[tails]
            expected = -difference.abs().square().sum(-1).sqrt()  # PyKEEN 1.11.1: the complex L2 norm
        with torch.no_grad():
            assert torch.allclose(kge.score_hrt(triples).squeeze(-1), expected, atol=1e-5), model


TORCHKGE_ARGS = ["--peer", "torchkge"] + TINY_ARGS[2:]  # its only model of the two, TransE, by default
TORCHKGE_CONFIG = TINY | {"peer": "torchkge", "models": ("transe",)}


def test_torchkge_has_no_rotate(capsys):
    assert main(TORCHKGE_ARGS + ["--peer-models", "transe,rotate"]) == 2  # refused before any import or timing
    assert "--peer torchkge has no rotate: pass --peer-models transe" in capsys.readouterr().err


def test_missing_torchkge_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchkge", None)
    monkeypatch.delitem(sys.modules, "dhns.bench.torchkge_side", raising=False)
    assert main(TORCHKGE_ARGS) == 2
    assert "--peer torchkge needs torchkge" in capsys.readouterr().err


def test_torchkge_holds_our_weights_and_ranks_like_us(tmp_path, capsys):
    torchkge = pytest.importorskip("torchkge")
    from dhns.bench.inputs import load_graph
    from dhns.bench.torchkge_side import SelfAdversarialLoss, TorchKGESide, load_structural_weights
    from dhns.training.objective import negative_weights, sigmoid_loss

    out = tmp_path / "peers.json"
    assert main(TORCHKGE_ARGS + ["--json", str(out)]) == 0
    report = capsys.readouterr().out
    assert f"== dhns vs torchkge {torchkge.__version__}:" in report and "| TransE | filtered MRR" in report
    assert "torchkge: ranks are pessimistic only" in report  # its one tie policy, said in the notes
    assert "filtered MRR (ours realistic, peer pessimistic)" in report
    result = json.loads(out.read_text())
    assert result["sides"]["peer"] == f"torchkge {torchkge.__version__}" and list(result["models"]) == ["transe"]
    figures = result["models"]["transe"]
    for side in ("dhns", "peer"):
        for key in ("triples_per_second", "seconds_per_epoch", "times_floor"):
            value = figures["training"][side][key]
            assert math.isfinite(value) and value > 0, (side, key)
        assert figures["evaluation"][side]["seconds"] > 0
    assert figures["training"]["peer"]["triples"] == 100 and figures["training"]["peer"]["batches"] == 2
    # its evaluation scores the stored rows as ours does (ours less the margin): with no ties, same ranks
    assert figures["evaluation"]["mrr_difference"] < 1e-5

    # the weight copy: its evaluation scores -||h + r - t||_1 of our rows; its training scores normalise h and t
    graph = load_graph(TINY["dataset"])
    side = TorchKGESide(PeerConfig(**TORCHKGE_CONFIG), graph, torch.device("cpu"))
    generator = torch.Generator().manual_seed(3)
    weights = StructuralWeights("transe", torch.randn(40, 8, generator=generator),
                                torch.randn(4, 8, generator=generator))
    kge = side.model("transe")
    load_structural_weights(kge, weights)
    heads, relations, tails = graph.train[:7].unbind(dim=1)
    entities, translations = weights.entities, weights.relations
    with torch.no_grad():
        head_rows, _, relation_rows, candidates = kge.inference_prepare_candidates(heads, tails, relations)
        tail_scores = kge.inference_scoring_function(head_rows, candidates, relation_rows)  # (7, 40)
        expected = -(entities[heads, None] + translations[relations, None] - entities[None]).abs().sum(-1)
        assert torch.allclose(tail_scores, expected, atol=1e-5)
        unit = torch.nn.functional.normalize(entities, dim=1)
        training = -(unit[heads] + translations[relations] - unit[tails]).abs().sum(-1)
        assert torch.allclose(kge.scoring_function(heads, tails, relations), training, atol=1e-5)

    # our loss on its score layout: positives repeated per negative, negatives as k blocks of the batch
    positive, negative = torch.randn(5, generator=generator), torch.randn(5, 3, generator=generator)
    margin, temperature = PeerConfig().margin, PeerConfig().adversarial_temperature
    ours = sigmoid_loss(margin + positive, margin + negative,
                        negative_weights(margin + negative, torch.ones(5, 3, dtype=torch.bool), temperature))
    theirs = SelfAdversarialLoss(margin, temperature, 3)(positive.repeat(3), negative.t().reshape(-1))
    assert torch.allclose(theirs, ours)


def test_a_peer_defaults_to_the_models_it_has():
    from dhns.bench.cli import parse_args

    assert parse_args(["--peer", "torchkge"])[0].models == ("transe",)  # no RotatE in TorchKGE
    assert parse_args(["--peer", "pykeen"])[0].models == ("transe", "rotate")
    assert parse_args(["--peer", "pykeen", "--peer-models", "rotate"])[0].models == ("rotate",)
