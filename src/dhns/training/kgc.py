"""Training a KGC model with negative sampling, validation-based model selection and early stopping."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from dhns.training.checkpoint import Checkpointing, check_finite, clone_state, fingerprint, restore_rng, rng_state
from dhns.config import SPARSE_OPTIMIZERS, PretrainConfig
from dhns.distributed import (
    SINGLE_PROCESS,
    Parallel,
    broadcast_from_main,
    gather_objects,
    mean_over_ranks,
    shard,
)
from dhns.evaluation import FilterIndex, evaluate_link_prediction
from dhns.host import keep_freed_memory
from dhns.models.kgc import KGCModel
from dhns.sampling import NegativeSampler
from dhns.training.objective import ExtraObjective, Objective, batch_loss
from dhns.training.step import LazyAdam, RowAdagrad, adam, apply_gradients, precision_context, run_epoch

Tensor = torch.Tensor
log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    best_epoch: int
    best_valid_metric: float
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)


@dataclass
class LoopState:
    """What an epoch loop carries from one epoch to the next, and what a checkpoint must restore."""

    epoch: int = 0
    best_metric: float = -math.inf
    best_epoch: int = 0
    stale: int = 0
    plateau: int = 0  # validations without gain since the last gain or learning-rate decay
    best_state: dict | None = None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def train_kgc(
    model: KGCModel,
    train_triples: Tensor,
    valid_triples: Tensor,
    filter_index: FilterIndex,
    objective: Objective,
    config: PretrainConfig,
    *,
    tie_policy: str = "realistic",
    seed: int = 0,
    on_epoch: Callable[[dict], None] | None = None,
    on_resume: Callable[[list[dict]], None] | None = None,
    stage: str = "train",
    checkpointing: Checkpointing | None = None,
    parallel: Parallel = SINGLE_PROCESS,
) -> TrainResult:
    """Fit `model` on `train_triples`; keep the parameters with the best validation MRR.

    Model selection sees only the validation split. The returned model holds the best parameters. With
    `checkpointing`, a snapshot is written every `checkpoint_every` epochs and a matching one is resumed,
    so a killed run continues where it stopped with the same result as an uninterrupted one. Under
    several `parallel` ranks each global batch is split across them (every rank validates the whole
    split, so all take the same model-selection decisions without talking). `on_epoch` sees each new
    epoch's record; `on_resume` sees, once, the history a resumed snapshot brings (a logger replays it).
    """
    device = model.device
    if device.type == "cpu":
        keep_freed_memory()  # about 2x faster CPU steps: large temporaries stop being page-faulted each step
    train_triples = train_triples.to(device)
    valid_triples = valid_triples.to(device)
    objective.to(device)
    extra = objective.extra
    order_rng = torch.Generator(device=device)
    order_rng.manual_seed(seed)  # identical on every rank: all ranks walk the same global batches
    sample_rng = order_rng if not parallel.active else torch.Generator(device=device)
    if parallel.active:
        sample_rng.manual_seed(seed + 7919 * (parallel.rank + 1))  # each rank draws its own negatives
    optimizer = kgc_optimizer(model, config)
    step = _make_step(model, optimizer, objective, sample_rng, parallel)

    loop, run_key = LoopState(), ""
    if checkpointing is not None:
        run_key = fingerprint(stage, config, seed, tie_policy, parallel.world_size, model, train_triples,
                              valid_triples, extra.identity() if extra is not None else None)
        # only rank 0 writes snapshots, so only its disk is trusted (other nodes may not share it)
        snapshot = broadcast_from_main(checkpointing.load(run_key) if parallel.is_main else None, parallel)
        if snapshot is not None:
            loop = _restore_kgc_snapshot(snapshot, model, optimizer, order_rng, sample_rng, objective.sampler, extra,
                                         parallel)
            if on_resume is not None:
                on_resume(list(loop.history))

    started = time.perf_counter() - loop.seconds
    progress = tqdm(range(loop.epoch + 1, config.num_epochs + 1), desc=stage, unit="epoch",
                    disable=None if parallel.is_main else True, initial=loop.epoch, total=config.num_epochs)
    for epoch in progress:
        if should_stop(loop, config):
            log.info("early stop after epoch %d: no validation gain for %d evaluations", loop.epoch, loop.stale)
            break
        model.train()
        epoch_started = time.perf_counter()
        label = f"{stage} epoch {epoch}" if parallel.is_main else None
        batch_losses = mean_over_ranks(run_epoch(train_triples, config.batch_size, order_rng, step, label), parallel)
        check_finite(stage, epoch, batch_losses, model.parameters(), checkpointing)
        record = {"epoch": epoch, "loss": float(batch_losses.mean()), "seconds": time.perf_counter() - epoch_started}
        if epoch % config.eval_every == 0 or epoch == config.num_epochs:
            model.eval()
            metrics = evaluate_link_prediction(model, valid_triples, filter_index, batch_size=config.eval_batch_size)
            record["valid_mrr"] = metrics["both"][tie_policy]["mrr"]
            record["valid_hits_at_10"] = metrics["both"][tie_policy]["hits_at_10"]
            if record["valid_mrr"] > loop.best_metric:
                loop.best_metric, loop.best_epoch, loop.stale, loop.plateau = record["valid_mrr"], epoch, 0, 0
                loop.best_state = clone_state(model)
            else:
                loop.stale += 1
                loop.plateau += 1
                if config.lr_schedule == "plateau" and loop.plateau >= config.lr_decay_patience:
                    scale_learning_rates(optimizer, config.lr_decay_factor)
                    loop.plateau = 0
            if config.lr_schedule != "none":
                record["lr"] = learning_rate(optimizer)  # a curve of its own (dvclive) where it can change
            progress.set_postfix(loss=f"{record['loss']:.4f}", valid_mrr=f"{record['valid_mrr']:.4f}")
            log.info("epoch %d loss %.4f valid mrr %.4f", epoch, record["loss"], record["valid_mrr"])
        loop.history.append(record)
        loop.epoch = epoch
        loop.seconds = time.perf_counter() - started
        if checkpointing is not None and checkpointing.due(epoch):
            snapshot = _kgc_snapshot(loop, model, optimizer, order_rng, sample_rng, objective.sampler, extra, parallel)
            if parallel.is_main:
                checkpointing.save(snapshot, run_key)
        if on_epoch is not None:
            on_epoch(record)
    if loop.best_state is not None:
        model.load_state_dict(loop.best_state)
    model.eval()
    return TrainResult(loop.best_epoch, loop.best_metric, loop.epoch, time.perf_counter() - started, loop.history)


def should_stop(loop: LoopState, config: PretrainConfig) -> bool:
    """`patience` validations without gain end a run, but never before `min_epochs` (a noisy start is no plateau)."""
    return bool(config.patience) and loop.stale >= config.patience and loop.epoch >= config.min_epochs


def scale_learning_rates(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Every learning rate of `optimizer` times `factor`, the dense Adam inside a row optimizer's too.

    Kept in the optimizer's own param groups, so its state_dict (and so a checkpoint) carries the decayed rates.
    """
    for group in optimizer.param_groups:
        group["lr"] *= factor
    inner = getattr(optimizer, "dense", None)
    if inner is not None:
        scale_learning_rates(inner, factor)


def learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The first param group's rate (the entity table's under a row optimizer): what the history logs."""
    return float(optimizer.param_groups[0]["lr"])


def kgc_optimizer(model: KGCModel, config: PretrainConfig) -> torch.optim.Optimizer:
    """`config.optimizer` for `model`: dense Adam, or lazy Adam or row-wise Adagrad on the entity table's
    gradients made sparse (dense Adam on the other parameters).

    The model's gradient form is set here because it must match the optimizer: SparseAdam takes sparse
    gradients only, and dense Adam would turn sparse ones back into a pass over the whole table.
    """
    model.sparse_entity_gradients = config.optimizer in SPARSE_OPTIMIZERS
    if not model.sparse_entity_gradients:
        return adam(model.parameters(), config.kgc_lr)
    table = model.entities.structural.weight
    others = [p for p in model.parameters() if p is not table]
    if config.optimizer == "row_adagrad":
        return RowAdagrad([table], others, config.row_adagrad_lr, config.kgc_lr)
    return LazyAdam([table], others, config.kgc_lr)


def _make_step(
    model: KGCModel,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    sample_rng: torch.Generator,
    parallel: Parallel,
) -> Callable[[Tensor], Tensor]:
    """The per-batch update: plain on one process; on several, this rank's shard through DDP."""
    if not parallel.active:
        return lambda positives: train_step(model, optimizer, objective, positives, sample_rng)
    if getattr(objective.extra, "joint_generator", False):
        raise ValueError("params train.joint_generator and train.protocol joint with generated negatives: not "
                         "supported with num_processes > 1 (each rank would update its own generator)")
    if model.sparse_entity_gradients and model.device.type != "cpu":
        raise ValueError("params optimizer: a sparse optimizer with num_processes > 1 runs on CPU processes only "
                         "(gloo all-reduces sparse gradients, NCCL does not); use adam on several GPUs")
    replicated = DistributedDataParallel(BatchLoss(model, objective),
                                         device_ids=[model.device.index] if model.device.type == "cuda" else None)

    def step(positives: Tensor) -> Tensor:
        local = shard(positives, parallel)
        # DDP averages gradients over ranks; scaling by the shard's share makes that the global batch mean
        scale = local.shape[0] * parallel.world_size / positives.shape[0]
        with precision_context(objective.precision, local.device):
            loss = replicated(local, sample_rng, scale)
        apply_gradients(loss, optimizer, model.parameters(), objective.max_grad_norm)
        with precision_context(objective.precision, local.device):
            objective.sampler.refresh(model, local, sample_rng)  # this rank's caches, from its own shard
        return loss.detach().float()

    return step


def _kgc_snapshot(loop: LoopState, model: KGCModel, optimizer: torch.optim.Optimizer, order_rng: torch.Generator,
                  sample_rng: torch.Generator, sampler: NegativeSampler, extra: ExtraObjective | None,
                  parallel: Parallel) -> dict:
    """Collective under several ranks (every rank's sampling state is gathered): call it on all of them."""
    return {
        "loop": dataclasses.asdict(loop),
        "epoch": loop.epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(order_rng),
        "sample_rngs": gather_objects(rng_state(sample_rng).cpu(), parallel),
        "samplers": gather_objects(sampler.state_dict(), parallel),  # a cache sampler's caches, per rank
        "extra": extra.state_dict() if extra is not None else {},
    }


def _restore_kgc_snapshot(snapshot: dict, model: KGCModel, optimizer: torch.optim.Optimizer,
                          order_rng: torch.Generator, sample_rng: torch.Generator, sampler: NegativeSampler,
                          extra: ExtraObjective | None, parallel: Parallel) -> LoopState:
    model.load_state_dict(snapshot["model"])
    optimizer.load_state_dict(snapshot["optimizer"])
    restore_rng(order_rng, snapshot["rng"])
    if sample_rng is not order_rng:
        restore_rng(sample_rng, snapshot["sample_rngs"][parallel.rank])
    if "samplers" in snapshot:  # snapshots from before samplers had state carry none
        sampler.load_state_dict(snapshot["samplers"][parallel.rank])
    if extra is not None:
        extra.load_state_dict(snapshot["extra"])
    loop = LoopState(**snapshot["loop"])
    if loop.best_state is not None:
        loop.best_state = {key: value.to(model.device) for key, value in loop.best_state.items()}
    return loop


class BatchLoss(torch.nn.Module):
    """`batch_loss` as a module, so DistributedDataParallel can wrap it and average its gradients."""

    def __init__(self, model: KGCModel, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, positives: Tensor, generator: torch.Generator, scale: float = 1.0) -> Tensor:
        return scale * batch_loss(self.model, self.objective, positives, generator)


def train_step(model: KGCModel, optimizer: torch.optim.Optimizer, objective: Objective, positives: Tensor,
               generator: torch.Generator) -> Tensor:
    """One optimiser step on one batch; returns the detached fp32 loss (no host sync)."""
    extra = objective.extra
    if extra is not None:
        extra.before_step(model, positives, generator)
    with precision_context(objective.precision, positives.device):
        loss = batch_loss(model, objective, positives, generator)
    apply_gradients(loss, optimizer, model.parameters(), objective.max_grad_norm)
    with precision_context(objective.precision, positives.device):
        objective.sampler.refresh(model, positives, generator)  # a cache follows the updated model
    if extra is not None:
        extra.after_step(model, positives, generator)
    return loss.detach().float()
