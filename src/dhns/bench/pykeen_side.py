"""PyKEEN's side of the peer comparison: its sLCWA training loop and RankBasedEvaluator on our graph's ids.

Imported only by `comparison.make_peer` (PyKEEN is the optional `peers` extra). The triples factories
are built from our id-mapped tensors, so both sides see the same ids and triples. The model matches
ours: TransE with the L1 distance and no entity re-normalisation (PyKEEN's default normalises; ours
does not), RotatE with complex entities and unit-modulus relations; NSSALoss with our margin and
temperature, BasicNegativeSampler with our number of negatives, Adam with our learning rate.
"""

from __future__ import annotations

import gc
import math
import time

import pykeen
import torch
from pykeen.evaluation import RankBasedEvaluator
from pykeen.losses import NSSALoss
from pykeen.models import ERModel, RotatE, TransE
from pykeen.training import SLCWATrainingLoop
from pykeen.triples import TriplesFactory

from dhns.bench.peers import EvaluationRun, PeerConfig, StructuralWeights, TrainingRun
from dhns.bench.timing import synchronize
from dhns.data import KnowledgeGraph

Tensor = torch.Tensor
EVAL_BROADCAST_BYTES = 1 << 30  # the most PyKEEN may broadcast per evaluation chunk (see evaluation_batch)


class PyKEENSide:
    def __init__(self, config: PeerConfig, graph: KnowledgeGraph, device: torch.device) -> None:
        self.name = f"pykeen {pykeen.get_version()}"
        began = time.perf_counter()
        gc.collect()  # what PyKEEN does after every epoch: its cost depends on this process's heap
        collect = time.perf_counter() - began
        self.notes = (
            "pykeen: BasicNegativeSampler does not filter false negatives (its default); each negative corrupts "
            "the head or the tail at random; negatives are drawn on the CPU in its data loader",
            f"pykeen: calls gc.collect() after every epoch ({collect:.2f} s in this process), part of its epoch "
            "time; whole epochs are timed as epochs of the train split, a --batches pass as one (partial) epoch",
            "pykeen 1.11.1 RotatE scores -||h o r - t||_2 (its forward fixes p = 2) where ours sums the complex "
            "moduli (Sun et al.): same work, different scores, so RotatE's MRRs are not expected to agree",
            f"pykeen: evaluates chunks of at most {EVAL_BROADCAST_BYTES >> 30} GiB per (queries x entities x width) "
            "broadcast, fewer queries than --eval-batch-size (at 256 its RotatE ran 24 GiB out of memory)",
            "pykeen: Adam is torch's default (multi-tensor) form, as a PyKEEN user gets it; ours is fused "
            "(torch.optim.Adam(fused=True), dhns.training.kgc.adam)",
            "both sides train with glibc keeping freed memory (as our loops do; PyKEEN's step is faster so too); "
            "PyKEEN evaluates under glibc's defaults (the kept heap grew its evaluation from 3.0 to 8.6 GB)")
        self.config = config
        self.device = device
        self.entity_to_id = {name: index for index, name in enumerate(graph.entity_names)}
        self.relation_to_id = {name: index for index, name in enumerate(graph.relation_names)}
        self.train_factory = self.factory(graph.train)
        self.known = [graph.train, graph.valid, graph.test]  # the filter: every split, as ours

    def factory(self, triples: Tensor) -> TriplesFactory:
        return TriplesFactory(mapped_triples=triples.cpu(), entity_to_id=self.entity_to_id,
                              relation_to_id=self.relation_to_id)

    def model(self, name: str) -> ERModel:
        loss = NSSALoss(margin=self.config.margin, adversarial_temperature=self.config.adversarial_temperature)
        shared = dict(triples_factory=self.train_factory, embedding_dim=self.config.dim, loss=loss,
                      random_seed=self.config.seed)
        if name == "transe":
            model = TransE(scoring_fct_norm=1, entity_constrainer=None, **shared)
        elif name == "rotate":
            model = RotatE(**shared)
        else:
            raise ValueError(f"pykeen side: no model {name!r}; expected transe or rotate")
        return model.to(self.device)

    def train(self, model: str, stream: Tensor) -> TrainingRun:
        """`warmup` batches as one untimed epoch, then, continuing from it, `epochs` timed epochs of the train
        split (the same triples as `stream`, which holds that many shuffled copies), or with `batches` one
        timed pass over `stream`."""
        config = self.config
        kge = self.model(model)
        loop = SLCWATrainingLoop(model=kge, triples_factory=self.train_factory, optimizer="adam",
                                 optimizer_kwargs={"lr": config.lr}, negative_sampler="basic",
                                 negative_sampler_kwargs={"num_negs_per_pos": config.num_negatives},
                                 automatic_memory_optimization=False)
        options = dict(batch_size=config.batch_size, use_tqdm=False, pin_memory=self.device.type == "cuda")
        whole_epochs = config.batches is None
        timed = self.train_factory if whole_epochs else self.factory(stream)
        epochs = config.epochs if whole_epochs else 1
        if config.warmup:
            loop.train(self.factory(stream[: config.warmup * config.batch_size]), num_epochs=1, **options)
        synchronize(self.device)
        began = time.perf_counter()
        # continuing runs epochs done + 1 .. num_epochs: `epochs` more, from the warm state
        done = 1 if config.warmup else 0
        losses = loop.train(timed, num_epochs=done + epochs, continue_training=bool(done), **options)
        synchronize(self.device)
        seconds = time.perf_counter() - began
        triples = epochs * timed.num_triples
        batches = epochs * math.ceil(timed.num_triples / config.batch_size)
        return TrainingRun(seconds=seconds, triples=triples, batches=batches,
                           mean_loss=sum(losses[done:]) / epochs if losses else None)

    def evaluate(self, weights: StructuralWeights, triples: Tensor) -> EvaluationRun:
        """RankBasedEvaluator, filtered by every split, on a model holding our weights; one untimed chunk first."""
        kge = self.model(weights.model)
        load_structural_weights(kge, weights)
        evaluator = RankBasedEvaluator(filtered=True)
        batch = self.evaluation_batch(weights)
        options = dict(batch_size=batch, additional_filter_triples=self.known, use_tqdm=False)
        triples = triples.cpu()
        evaluator.evaluate(kge, triples[:batch], **options)
        synchronize(self.device)
        began = time.perf_counter()
        result = evaluator.evaluate(kge, triples, **options)
        synchronize(self.device)
        seconds = time.perf_counter() - began
        return EvaluationRun(seconds=seconds, mrr=float(result.get_metric("both.realistic.inverse_harmonic_mean_rank")),
                             hits_at_10=float(result.get_metric("both.realistic.hits_at_10")))

    def evaluation_batch(self, weights: StructuralWeights) -> int:
        """The shared chunk size, made smaller where PyKEEN would broadcast more than `EVAL_BROADCAST_BYTES`.

        PyKEEN ranks a chunk through a (queries, entities, width) tensor and temporaries of that size (its
        TransE as well as its RotatE): with MKG-Y's 15000 entities, 256 TransE queries took 12.9 GB of
        resident memory and RotatE ran this 24 GiB machine out of memory. Ours needs no broadcast.
        """
        per_query = weights.entities.shape[0] * weights.entities.shape[1] * 4  # fp32; RotatE: complex64
        return max(1, min(self.config.eval_batch_size, EVAL_BROADCAST_BYTES // per_query))


def load_structural_weights(kge: ERModel, weights: StructuralWeights) -> None:
    """Our layout into PyKEEN's: its complex embeddings are stored as interleaved (real, imaginary) pairs.

    TransE copies as is. RotatE entities go from [real | imaginary] to pairs; relations from phases to
    the unit complex numbers (cos, sin) they stand for.
    """
    entities, relations = weights.entities, weights.relations
    if weights.model == "rotate":
        real, imaginary = entities.chunk(2, dim=-1)
        entities = torch.stack([real, imaginary], dim=-1).flatten(1)  # (N, 2d) as (N, d, 2)
        relations = torch.stack([torch.cos(relations), torch.sin(relations)], dim=-1).flatten(1)
    with torch.no_grad():
        for table, values in ((kge.entity_representations[0], entities), (kge.relation_representations[0], relations)):
            stored = table._embeddings.weight  # PyKEEN's Embedding keeps its nn.Embedding here
            if stored.shape != values.shape:
                raise ValueError(f"pykeen {weights.model}: weights {tuple(values.shape)} do not fit {tuple(stored.shape)}")
            stored.copy_(values.to(stored.device))
