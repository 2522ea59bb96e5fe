"""The vocabulary of the peer comparison: its config, what a side returns, and the triples both sides walk.

Both sides train the same structural model (no modality features) on one stream of triples, one after
the other, with the same batch size, negatives, loss (self-adversarial, margin and temperature from the
library's defaults), optimiser and thread count; each warms up first and times only its own pass. A
side is anything with `train` and `evaluate` (`PeerSide`): ours is `own_side`, PyKEEN's `pykeen_side`,
TorchKGE's `torchkge_side` (TransE only), and tests pass a fake one; `comparison` runs them and computes the
ratios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from dhns.bench.config import parse_synthetic

Tensor = torch.Tensor
PEER_MODELS = ("transe", "rotate")
# peer name -> (module, class); imported only when asked for, so the peer library stays optional
PEERS = {"pykeen": ("dhns.bench.pykeen_side", "PyKEENSide"), "torchkge": ("dhns.bench.torchkge_side", "TorchKGESide")}
PEER_HAS_MODELS = {"torchkge": ("transe",)}  # peers lacking some of PEER_MODELS: torchkge 0.17.7 has no RotatE
INSTALL_HINT = "pip install -e .[peers]"
SIZE_OPTIONS = {"dim": "--peer-dim", "batch_size": "--peer-batch-size", "num_negatives": "--peer-negatives",
                "epochs": "--peer-epochs", "eval_batch_size": "--eval-batch-size"}  # config field -> its option


class PeerUnavailable(ValueError):
    """The peer library is not installed: a setup error, reported like a bad option."""


@dataclass(frozen=True)
class PeerConfig:
    peer: str = "pykeen"
    dataset: str = "data/raw/MKG-Y"  # OpenKE folder, or "synthetic:N[:entities[:relations]]"
    models: tuple[str, ...] = PEER_MODELS
    dim: int = 200  # embedding_dim on both sides (RotatE: 200 complex = 400 reals per entity)
    batch_size: int = 2000
    num_negatives: int = 64  # per positive
    epochs: int = 1  # timed epochs per side and model ...
    batches: int | None = None  # ... or exactly this many timed batches instead
    warmup: int = 1  # untimed batches each side runs first
    eval_triples: int | None = None  # test triples ranked (both sides); None = the split, 0 = no evaluation
    eval_batch_size: int = 256  # queries per chunk, both sides
    device: str = "auto"
    threads: int | None = None  # torch CPU threads for both sides; None = torch's default
    seed: int = 0
    keep_freed_memory: bool = True  # on CPU: both sides train so; the peer evaluates under glibc's defaults
    bandwidth_mib: int | None = None  # size of the bandwidth probe's tensors; None = its default
    # the loss both sides train with (not params.yaml's: a peer has no params file), recorded in the JSON
    margin: float = 9.0  # gamma of TransE and RotatE
    adversarial_temperature: float = 1.0
    lr: float = 0.005  # Adam, both sides

    def __post_init__(self) -> None:
        parse_synthetic(self.dataset)
        if self.peer not in PEERS:
            raise ValueError(f"--peer {self.peer!r}: expected one of {', '.join(PEERS)}")
        unknown = [model for model in self.models if model not in PEER_MODELS]
        if unknown or not self.models:
            raise ValueError(f"--peer-models {','.join(self.models)}: expected a subset of {','.join(PEER_MODELS)}")
        has = PEER_HAS_MODELS.get(self.peer, PEER_MODELS)
        missing = [model for model in self.models if model not in has]
        if missing:
            raise ValueError(f"--peer {self.peer} has no {','.join(missing)}: pass --peer-models {','.join(has)}")
        for key, option in SIZE_OPTIONS.items():
            if getattr(self, key) < 1:
                raise ValueError(f"{option} must be >= 1, got {getattr(self, key)}")
        for key, value in (("batches", self.batches), ("threads", self.threads)):
            if value is not None and value < 1:
                raise ValueError(f"--{key} must be >= 1, got {value}")
        if self.warmup < 0 or (self.eval_triples is not None and self.eval_triples < 0):
            raise ValueError(f"--warmup and --peer-eval-triples must be >= 0, got {self.warmup}, {self.eval_triples}")
        if self.margin < 0 or self.adversarial_temperature < 0 or self.lr <= 0:
            raise ValueError(f"margin and temperature must be >= 0 and lr > 0, got {self.margin}, "
                             f"{self.adversarial_temperature}, {self.lr}")


@dataclass(frozen=True)
class TrainingRun:
    seconds: float  # the timed pass only, after the side's warm-up
    triples: int
    batches: int
    mean_loss: float | None


@dataclass(frozen=True)
class EvaluationRun:
    seconds: float  # everything from known triples to metrics: the filter's preparation and the ranking
    mrr: float  # filtered, head and tail queries pooled, under `tie_policy`
    hits_at_10: float
    tie_policy: str = "realistic"  # a peer that offers no realistic ranks says which it computed


@dataclass(frozen=True)
class StructuralWeights:
    """A structural model's parameters in our layout: what lets both sides rank with the same model."""

    model: str
    entities: Tensor  # (N, w): TransE w = d; RotatE [real | imaginary], w = 2d
    relations: Tensor  # (R, d): TransE translations; RotatE rotation phases


class PeerSide(Protocol):
    name: str  # as the report names it, e.g. "pykeen 1.11.1"
    notes: tuple[str, ...]  # how its run differs from a plain reading of the shared config

    def train(self, model: str, stream: Tensor) -> TrainingRun: ...

    def evaluate(self, weights: StructuralWeights, triples: Tensor) -> EvaluationRun: ...


def training_stream(train: Tensor, batch_size: int, epochs: int, batches: int | None, seed: int = 0) -> Tensor:
    """(S, 3) the triples both sides walk once: `epochs` shuffled copies of train, or the first `batches`
    batches of such copies."""
    wanted = epochs * train.shape[0] if batches is None else batches * batch_size
    rng = torch.Generator().manual_seed(seed)
    copies = [train[torch.randperm(train.shape[0], generator=rng)] for _ in range(math.ceil(wanted / train.shape[0]))]
    return torch.cat(copies)[:wanted]
