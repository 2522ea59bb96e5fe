"""What one training step optimises: the negatives, how the loss weighs them, and the terms added to it.

Pretraining, NTAT, `dhns.tune` and the benchmark all build their objective through `build_objective` (NTAT's
generated negatives through `dhns.training.ntat.build_train_objective`, which adds them), from the same
params section, so a setting (gradient clipping, the regulariser, the generated negatives'
form) cannot be honoured by one of them and silently dropped by another.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from dhns.config import PretrainConfig
from dhns.models.kgc import KGCModel
from dhns.sampling import CacheSampler, NegativeSampler, make_sampler

Tensor = torch.Tensor


class ExtraObjective(Protocol):
    """A loss term added to every batch (NTAT's hard negatives), hooks before and after each KGC step, and its state."""

    def loss(self, model: KGCModel, positives: Tensor, rng: torch.Generator | None) -> Tensor: ...

    def before_step(self, model: KGCModel, positives: Tensor, rng: torch.Generator | None) -> None: ...

    def after_step(self, model: KGCModel, positives: Tensor, rng: torch.Generator | None) -> None: ...

    def state_dict(self) -> dict: ...  # what changes during training: a checkpoint carries it

    def load_state_dict(self, state: dict) -> None: ...

    def identity(self) -> dict: ...  # what fixes the objective at the start (e.g. a frozen generator): keys the run


@dataclass(frozen=True)
class Objective:
    """Everything a step needs beside the model and its optimizer, resolved from one params section."""

    sampler: NegativeSampler
    adversarial_temperature: float | None  # None: the loss weighs negatives uniformly
    regularizer: str
    regularization: float
    max_grad_norm: float
    precision: str
    extra: ExtraObjective | None = None  # generated negatives' hard loss, when the scheme has them

    def to(self, device: torch.device | str) -> "Objective":
        self.sampler.to(device)
        return self

    def base(self) -> "Objective":
        """The same objective without its extra term: what the generated negatives add to."""
        return dataclasses.replace(self, extra=None)


def objective_for(config: PretrainConfig, sampler: NegativeSampler,
                  extra: ExtraObjective | None = None) -> Objective:
    """The one place a params section's loss settings become an `Objective` (for a given sampler)."""
    return Objective(sampler, config.loss_temperature(), config.regularizer, config.regularization,
                     config.max_grad_norm, config.precision, extra)


def build_objective(config: PretrainConfig, train_triples: Tensor, num_entities: int, num_relations: int,
                    extra: ExtraObjective | None = None) -> Objective:
    """A stage's objective from its settings: the sampler its scheme names (corrupting, or cached), plus `extra`.

    Generated negatives come from `dhns.training.ntat.build_train_objective`, which builds their term and
    calls this; kept apart so that pretraining, which never generates, does not depend on the generator.
    """
    sampler = make_sampler(config.negatives.corruption, train_triples, num_entities, num_relations,
                           config.num_negatives)
    if config.negatives.cached:  # the corruption rule still picks the side; the cache supplies the entity
        sampler = CacheSampler(sampler, train_triples, config.cache_size, config.cache_pool, config.cache_refresh)
    return objective_for(config, sampler, extra)


def negative_weights(negative_scores: Tensor, valid: Tensor, adversarial_temperature: float | None) -> Tensor:
    """(B, k) weights summing to 1 per row over valid negatives.

    Self-adversarial weighting (Sun et al., 2019, RotatE) puts more weight on negatives the model scores
    high; the weights are detached, so they steer the gradient without receiving one.
    """
    if adversarial_temperature is None:
        logits = torch.zeros_like(negative_scores)
    else:
        logits = adversarial_temperature * negative_scores.detach()
    logits = logits.masked_fill(~valid, float("-inf"))
    weights = torch.softmax(logits, dim=1)
    return torch.nan_to_num(weights, nan=0.0)  # a row with no valid negative contributes nothing


def sigmoid_loss(positive_scores: Tensor, negative_scores: Tensor, weights: Tensor) -> Tensor:
    """Mean over the batch of -log s(pos) and the weighted -log s(-neg), averaged (RotatE's loss)."""
    positive_term = -F.logsigmoid(positive_scores)
    negative_term = -(weights * F.logsigmoid(-negative_scores)).sum(dim=1)
    return ((positive_term + negative_term) / 2).mean()


def batch_loss(model: KGCModel, objective: Objective, positives: Tensor, generator: torch.Generator | None) -> Tensor:
    """The loss of one batch: sampled negatives, (self-adversarial) sigmoid loss, optional extra terms."""
    negatives = objective.sampler.sample(positives, generator)
    positive_scores, negative_scores = model.score_corrupted(positives, negatives.entities, negatives.corrupt_tail)
    weights = negative_weights(negative_scores, negatives.valid, objective.adversarial_temperature)
    loss = sigmoid_loss(positive_scores, negative_scores, weights)
    if objective.regularization > 0:
        loss = loss + objective.regularization * model.embedding_norms(positives, objective.regularizer)
    if objective.extra is not None:
        loss = loss + objective.extra.loss(model, positives, generator)
    return loss
