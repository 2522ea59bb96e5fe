"""Our side of the peer comparison: the pretrain stage's step and our filtered evaluation, timed as the bench does.

Training goes through `stages.kgc_phase` (`dhns.training.kgc.train_step`, the self_adversarial sampler, Adam),
the same function the bench's pretrain figure comes from, on a structural model built by
`stages.build_model` without modality features.
"""

from __future__ import annotations

import dataclasses

import time

import torch

from dhns.bench.config import BenchConfig
from dhns.bench.peers import EvaluationRun, PeerConfig, StructuralWeights, TrainingRun
from dhns.bench.stages import build_model, kgc_phase
from dhns.bench.timing import synchronize
from dhns.bench.settings import bench_params, pretrain_settings
from dhns.config import Params, PretrainConfig
from dhns.data import KnowledgeGraph
from dhns.evaluation import build_filter_index, evaluate_link_prediction
from dhns.models.kgc import KGCModel

Tensor = torch.Tensor


class OurSide:
    name = "dhns"
    notes = ("dhns: negatives that form a training triple are redrawn 3 times, then masked out of the loss "
             "(part of its timed step); entities are not re-normalised after a step",)

    def __init__(self, config: PeerConfig, graph: KnowledgeGraph, device: torch.device) -> None:
        self.config = config
        self.graph = graph
        self.device = device
        self.train_triples = graph.train.to(device)
        self.trained: dict[str, KGCModel] = {}

    def bench_config(self, model: str) -> BenchConfig:
        """The peer run as a bench config: what `build_model` and `kgc_phase` read."""
        config = self.config
        return BenchConfig(dataset=config.dataset, model=model, dim=config.dim, batch_size=config.batch_size,
                           num_negatives=config.num_negatives, modalities=(), device=str(self.device),
                           warmup=config.warmup, stages=(), threads=config.threads, seed=config.seed,
                           keep_freed_memory=config.keep_freed_memory, margin=config.margin)

    def workload(self, bench_config: BenchConfig, params: Params) -> PretrainConfig:
        """params' pretrain section with the loss both sides share: self-adversarial, no regulariser, fp32 Adam."""
        return dataclasses.replace(pretrain_settings(bench_config, params), sampler="self_adversarial", corruption="",
                                   weighting="", cache="none", kgc_lr=self.config.lr, regularization=0.0,
                                   max_grad_norm=0.0, adversarial_temperature=self.config.adversarial_temperature,
                                   precision="fp32", optimizer="adam")

    def train(self, model: str, stream: Tensor) -> TrainingRun:
        """One pass over `stream`, after `warmup` untimed batches; the sampler filters against all of train."""
        bench_config = self.bench_config(model)
        params = bench_params(bench_config)
        kgc = build_model(bench_config, params, self.graph, self.device)
        stage = self.workload(bench_config, params)
        timing = kgc_phase(bench_config, kgc, self.train_triples, stage, None, timed=stream.to(self.device))
        self.trained[model] = kgc
        return TrainingRun(seconds=timing["measured_seconds"], triples=timing["measured_triples"],
                           batches=timing["measured_batches"], mean_loss=timing["mean_loss"])

    def trained_weights(self, model: str) -> StructuralWeights:
        state = self.trained[model].state_dict()
        return StructuralWeights(model, state["entities.structural.weight"].detach().cpu().clone(),
                                 state["relations.weight"].detach().cpu().clone())

    def evaluate(self, weights: StructuralWeights, triples: Tensor) -> EvaluationRun:
        """Filter index plus ranking of both sides, timed together (the peer's time includes its filter too)."""
        bench_config = self.bench_config(weights.model)
        kgc = build_model(bench_config, bench_params(bench_config), self.graph, self.device)
        kgc.load_state_dict({"entities.structural.weight": weights.entities, "relations.weight": weights.relations})
        kgc.eval()
        triples = triples.to(self.device)
        known = self.graph.all_triples().to(self.device)
        batch = self.config.eval_batch_size
        evaluate_link_prediction(kgc, triples[:batch], build_filter_index(known, kgc.num_entities), batch_size=batch)
        kgc.eval()  # drops the cached entity table: the timed pass builds it as a real evaluation does
        synchronize(self.device)
        began = time.perf_counter()
        metrics = evaluate_link_prediction(kgc, triples, build_filter_index(known, kgc.num_entities),
                                           batch_size=batch)
        synchronize(self.device)
        seconds = time.perf_counter() - began
        realistic = metrics["both"]["realistic"]
        return EvaluationRun(seconds=seconds, mrr=realistic["mrr"], hits_at_10=realistic["hits_at_10"])
