"""The KGC training stages' lifecycle (pretrain, train): the run with its curves and checkpoints, and what
it leaves in models/<stage> and metrics/<stage>.json (where train starts from: `dhns.pipeline.starting_point`)."""

from __future__ import annotations

from typing import Callable

import torch

from dhns.distributed import shutdown_parallel
from dhns.evaluation import build_filter_index
from dhns.host import describe_hardware, resolve_precision
from dhns.io import atomic_directory
from dhns.live import StageCurves
from dhns.models.kgc import KGCModel, save_model
from dhns.pipeline.inputs import StageInputs
from dhns.pipeline.paths import checkpoint_dir, model_dir
from dhns.training.checkpoint import Checkpointing
from dhns.training.kgc import TrainResult, train_kgc
from dhns.training.objective import Objective


def training_summary(result: TrainResult, tie_policy: str, extra: dict | None = None,
                     device: torch.device | None = None) -> dict:
    """What a KGC training stage reports in metrics/<stage>.json (its curves are logged per epoch)."""
    return {
        **(extra or {}),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "valid": {"both": {tie_policy: {"mrr": result.best_valid_metric}}},
        "seconds": round(result.seconds, 2),
        "seconds_per_epoch": round(result.seconds / max(1, result.epochs_run), 3),
        **({"hardware": describe_hardware(device)} if device is not None else {}),
    }


def run_kgc_stage(stage: str, inputs: StageInputs, model: KGCModel, objective: Objective, *,
                  model_info: dict | None = None, summary: Callable[[], dict] | None = None) -> int:
    """Train `model` with early stopping on validation, resumably; rank 0 writes models/<stage> and the summary.

    The stage's own params section (`pretrain` or `train`) sets the loop; `summary` is called after
    training, so it can report what training changed (the generator's steps).
    """
    params, device, graph = inputs.params, inputs.device, inputs.graph
    config = getattr(params, stage)
    filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
    checkpointing = Checkpointing(checkpoint_dir(stage), config.checkpoint_every)
    with StageCurves(stage, enabled=inputs.parallel.is_main) as curves:  # rank 0 writes the outputs
        result = train_kgc(model, graph.train, graph.valid, filter_index, objective, config,
                           tie_policy=params.evaluate.tie_policy, seed=params.seed, stage=stage,
                           checkpointing=checkpointing, parallel=inputs.parallel,
                           on_epoch=curves.log_epoch, on_resume=curves.log_history)
        if not inputs.parallel.is_main:
            shutdown_parallel()
            return 0
        with atomic_directory(model_dir(stage)) as staging:
            save_model(model, staging, {"best_epoch": result.best_epoch, **(model_info or {})})
        reported = {**(summary() if summary else {}), "precision": resolve_precision(config.precision, device)}
        curves.set_summary(training_summary(result, params.evaluate.tie_policy, reported, device=device))
    checkpointing.clear()  # outputs are written: the snapshot has served its purpose
    shutdown_parallel()
    return 0
