"""TorchKGE's side of the peer comparison: its TransE, negative sampler, data loader and link-prediction evaluator.

Imported only by `comparison.make_peer` (TorchKGE is the optional `peers` extra). TorchKGE 0.17.7 has no
RotatE, so this side runs TransE alone (`PeerConfig` refuses `--peer torchkge` with rotate). Its
`Trainer` draws one negative per positive, so the timed loop is the one TorchKGE's documentation shows
(its `DataLoader`, `UniformNegativeSampler.corrupt_batch` with our number of negatives, the model's
forward, a loss, Adam, `normalize_parameters` after each epoch). It ships no self-adversarial loss: its
(positive, negative) scores go through `SelfAdversarialLoss` below, our loss with our margin and
temperature. Evaluation loads our weights into its TransE and runs its `LinkPredictionEvaluator`, filtered
by every split through its `KnowledgeGraph` dictionaries.
"""

from __future__ import annotations

import math
import time

import torch
import torchkge
from torchkge.data_structures import KnowledgeGraph as TorchKGEGraph
from torchkge.evaluation import LinkPredictionEvaluator
from torchkge.models import TransEModel
from torchkge.sampling import UniformNegativeSampler
from torchkge.utils import DataLoader

from dhns.bench.peers import EvaluationRun, PeerConfig, StructuralWeights, TrainingRun
from dhns.bench.timing import synchronize
from dhns.data import KnowledgeGraph

Tensor = torch.Tensor
EVAL_BROADCAST_BYTES = 1 << 30  # the most its evaluation may broadcast per chunk, as on the PyKEEN side


class SelfAdversarialLoss(torch.nn.Module):
    """Our loss (`dhns.training.kgc.sigmoid_loss` with self-adversarial weights) on TorchKGE's score layout.

    TorchKGE's forward returns the positives' scores repeated once per negative and the negatives' scores
    as `num_negatives` consecutive blocks of the batch; its TransE scores are -distance, ours are
    margin - distance, so the margin is added here.
    """

    def __init__(self, margin: float, temperature: float, num_negatives: int) -> None:
        super().__init__()
        self.margin = margin
        self.temperature = temperature
        self.num_negatives = num_negatives

    def forward(self, positive: Tensor, negative: Tensor) -> Tensor:
        positive = self.margin + positive.view(self.num_negatives, -1)[0]  # (B,)
        negative = self.margin + negative.view(self.num_negatives, -1).t()  # (B, k)
        weights = torch.softmax(self.temperature * negative.detach(), dim=1)
        positive_term = -torch.nn.functional.logsigmoid(positive)
        negative_term = -(weights * torch.nn.functional.logsigmoid(-negative)).sum(dim=1)
        return ((positive_term + negative_term) / 2).mean()


class TorchKGESide:
    def __init__(self, config: PeerConfig, graph: KnowledgeGraph, device: torch.device) -> None:
        self.name = f"torchkge {torchkge.__version__}"
        self.notes = (
            f"torchkge {torchkge.__version__} has no RotatE (its models: TransE, TransH, TransR, TransD, TorusE, "
            "RESCAL, DistMult, HolE, ComplEx, ANALOGY, ConvKB): it is compared on TransE only",
            "torchkge: its TransE (dissimilarity 'L1') L2-normalises h and t inside every training score, "
            "-||h/|h| + r - t/|t| ||_1 (ours does not normalise); its evaluation scores the stored rows as they "
            "are, so with our weights loaded its ranks are ours (its score is ours minus the margin)",
            "torchkge: ships margin, logistic and BCE losses but no self-adversarial one; its (positive, "
            "negative) scores go through our self-adversarial sigmoid loss (margin, temperature), written on "
            "this side in a few tensor operations",
            "torchkge: its Trainer draws one negative per positive, so the timed loop is the one its docs show: "
            "utils.DataLoader batches in the stream's order (no reshuffle), UniformNegativeSampler.corrupt_batch "
            "with our negatives, the model's forward, the loss, torch's default (multi-tensor) Adam, loss.item() "
            "per batch, normalize_parameters() after each epoch (a --batches pass counts as one epoch)",
            "torchkge: UniformNegativeSampler corrupts the head or the tail with probability 1/2, draws the "
            "replacement from entities 1..N-1 (randint(1, n_ent): entity 0 is never a negative) and does not "
            "filter false negatives; negatives are drawn on the training device",
            "torchkge: ranks are pessimistic only (get_rank counts every score >= the true one), not the realistic "
            "mean of optimistic and pessimistic: its MRR and hits@10 are pessimistic (equal where no scores tie)",
            "torchkge: the filter is its KnowledgeGraph's (head, relation) and (tail, relation) dictionaries over "
            "every split, built in Python inside the timed evaluation and applied query by query "
            f"(filter_scores); chunks of at most {EVAL_BROADCAST_BYTES >> 30} GiB per (queries x entities x "
            "width) broadcast, as on the PyKEEN side; run under torch.no_grad(), which its evaluator does not "
            "set itself (without it each chunk would also keep an autograd graph)")
        self.config = config
        self.device = device
        self.entity_to_id = {name: index for index, name in enumerate(graph.entity_names)}
        self.relation_to_id = {name: index for index, name in enumerate(graph.relation_names)}
        self.train_size = int(graph.train.shape[0])
        self.known = graph.all_triples()  # the filter: every split, as ours

    def knowledge_graph(self, triples: Tensor, filter_from: TorchKGEGraph | None = None) -> TorchKGEGraph:
        """Our (h, r, t) rows as TorchKGE's graph; with `filter_from`, sharing that graph's filter dictionaries."""
        triples = triples.cpu().long()
        columns = {"heads": triples[:, 0].contiguous(), "relations": triples[:, 1].contiguous(),
                   "tails": triples[:, 2].contiguous()}
        shared = {} if filter_from is None else dict(dict_of_heads=filter_from.dict_of_heads,
                                                     dict_of_tails=filter_from.dict_of_tails,
                                                     dict_of_rels=filter_from.dict_of_rels)
        return TorchKGEGraph(kg=columns, ent2ix=self.entity_to_id, rel2ix=self.relation_to_id, **shared)

    def model(self, name: str) -> TransEModel:
        if name != "transe":
            raise ValueError(f"torchkge side: no model {name!r}; "
                             f"torchkge {torchkge.__version__} has TransE, not RotatE")
        torch.manual_seed(self.config.seed)  # TorchKGE initialises from torch's global generator
        model = TransEModel(self.config.dim, len(self.entity_to_id), len(self.relation_to_id), dissimilarity_type="L1")
        return model.to(self.device)

    def train(self, model: str, stream: Tensor) -> TrainingRun:
        """`warmup` batches as one untimed epoch, then, continuing from it, one timed pass over `stream`: an
        epoch per train-sized piece of it (`epochs` of them), or with `batches` one (partial) epoch."""
        config = self.config
        kge = self.model(model)
        loss = SelfAdversarialLoss(config.margin, config.adversarial_temperature, config.num_negatives)
        optimizer = torch.optim.Adam(kge.parameters(), lr=config.lr)
        epochs = list(stream.split(self.train_size)) if config.batches is None else [stream]
        graphs = [self.knowledge_graph(piece) for piece in epochs]  # built untimed, as PyKEEN's factories
        sampler = UniformNegativeSampler(graphs[0], n_neg=config.num_negatives)
        if config.warmup:
            warm = self.knowledge_graph(stream[: config.warmup * config.batch_size])
            self.run_epoch(kge, loss, optimizer, sampler, warm)
        synchronize(self.device)
        began = time.perf_counter()
        losses = [self.run_epoch(kge, loss, optimizer, sampler, graph) for graph in graphs]
        synchronize(self.device)
        seconds = time.perf_counter() - began
        batches = sum(math.ceil(graph.n_facts / config.batch_size) for graph in graphs)
        return TrainingRun(seconds=seconds, triples=int(stream.shape[0]), batches=batches,
                           mean_loss=sum(sum(epoch) for epoch in losses) / batches)

    def run_epoch(self, kge: TransEModel, loss: SelfAdversarialLoss, optimizer: torch.optim.Optimizer,
                  sampler: UniformNegativeSampler, graph: TorchKGEGraph) -> list[float]:
        """One epoch of TorchKGE's documented loop over `graph`'s triples in their order; the batches' losses."""
        config = self.config
        loader = DataLoader(graph, batch_size=config.batch_size, use_cuda="all" if self.device.type == "cuda" else None)
        losses = []
        for heads, tails, relations in loader:
            negative_heads, negative_tails = sampler.corrupt_batch(heads, tails, relations, n_neg=config.num_negatives)
            optimizer.zero_grad()
            positive, negative = kge(heads, tails, relations, negative_heads, negative_tails)
            batch_loss = loss(positive, negative)
            batch_loss.backward()
            optimizer.step()
            losses.append(batch_loss.item())
        kge.normalize_parameters()
        return losses

    def evaluate(self, weights: StructuralWeights, triples: Tensor) -> EvaluationRun:
        """LinkPredictionEvaluator, filtered by every split, on a TransE holding our weights; one untimed chunk
        first. The timed part builds the filter (TorchKGE's graph of every known triple) and ranks."""
        kge = self.model(weights.model)
        load_structural_weights(kge, weights)
        batch = self.evaluation_batch(weights)
        self.rank(kge, triples[:batch], batch)
        synchronize(self.device)
        began = time.perf_counter()
        evaluator = self.rank(kge, triples, batch)
        synchronize(self.device)
        seconds = time.perf_counter() - began
        _, filtered_mrr = evaluator.mrr()
        _, filtered_hits = evaluator.hit_at_k(k=10)
        return EvaluationRun(seconds=seconds, mrr=float(filtered_mrr), hits_at_10=float(filtered_hits),
                             tie_policy="pessimistic")

    def rank(self, kge: TransEModel, triples: Tensor, batch: int) -> LinkPredictionEvaluator:
        known = self.knowledge_graph(self.known)
        evaluator = LinkPredictionEvaluator(kge, self.knowledge_graph(triples, filter_from=known))
        with torch.no_grad():
            evaluator.evaluate(b_size=batch, verbose=False)
        return evaluator

    def evaluation_batch(self, weights: StructuralWeights) -> int:
        """The shared chunk size, made smaller where TorchKGE would broadcast more than `EVAL_BROADCAST_BYTES`:
        its TransE ranks a chunk through (queries, entities, width) differences, as PyKEEN's does."""
        per_query = weights.entities.shape[0] * weights.entities.shape[1] * 4  # fp32
        return max(1, min(self.config.eval_batch_size, EVAL_BROADCAST_BYTES // per_query))


def load_structural_weights(kge: TransEModel, weights: StructuralWeights) -> None:
    """Our TransE layout is TorchKGE's: entity and relation rows copy as they are (no normalisation)."""
    if weights.model != "transe":
        raise ValueError(f"torchkge side: no model {weights.model!r}; it holds TransE weights only")
    with torch.no_grad():
        for stored, values in ((kge.ent_emb.weight, weights.entities), (kge.rel_emb.weight, weights.relations)):
            if stored.shape != values.shape:
                raise ValueError(f"torchkge transe: weights {tuple(values.shape)} do not fit {tuple(stored.shape)}")
            stored.copy_(values.to(stored.device))
