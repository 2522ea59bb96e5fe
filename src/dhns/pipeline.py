"""What every modelling stage starts from (params, the seeded device, the graph, its features), and how the two
KGC training stages (pretrain, train) run, resume and write their outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from dhns.checkpoint import Checkpointing
from dhns.config import Params, PretrainConfig, load_params
from dhns.data import KnowledgeGraph, load_prepared
from dhns.distributed import SINGLE_PROCESS, Parallel, init_parallel, shutdown_parallel
from dhns.evaluation import build_filter_index
from dhns.features.bundle import read_feature_bundle
from dhns.io import atomic_directory
from dhns.live import StageCurves
from dhns.models.kgc import KGCModel, save_model
from dhns.sampling import NegativeSampler
from dhns.training import resolve_device, resolve_precision, seed_everything, train_kgc, training_summary

PREPARED_DIR = Path("data/prepared")
FEATURES_DIR = Path("data/features")


@dataclass(frozen=True)
class StageInputs:
    params: Params
    device: torch.device
    graph: KnowledgeGraph
    features: dict[str, tuple[torch.Tensor, torch.Tensor]]  # modality -> (vectors (N, d), present (N,))
    parallel: Parallel = SINGLE_PROCESS  # this rank, when torchrun launched the stage


def load_stage_inputs(params_path: str | Path = "params.yaml") -> StageInputs:
    params = load_params(params_path)
    seed_everything(params.seed)
    graph = load_prepared(PREPARED_DIR)
    features = read_feature_bundle(FEATURES_DIR, graph.num_entities)
    parallel, device = init_parallel(resolve_device(params.device))
    return StageInputs(params, device, graph, features, parallel)


def run_kgc_stage(stage: str, inputs: StageInputs, model: KGCModel, sampler: NegativeSampler, config: PretrainConfig,
                  *, extra: Any = None, model_info: dict | None = None,
                  summary: Callable[[], dict] | None = None) -> int:
    """Train `model` with early stopping on validation, resumably; rank 0 writes models/<stage> and the summary.

    `summary` is called after training, so it can report what training changed (the generator's steps).
    """
    params, device, graph = inputs.params, inputs.device, inputs.graph
    filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
    checkpointing = Checkpointing(Path("checkpoints") / stage, config.checkpoint_every)
    with StageCurves(stage, enabled=inputs.parallel.is_main) as curves:  # rank 0 writes the outputs
        result = train_kgc(model, graph.train, graph.valid, filter_index, sampler, config,
                           tie_policy=params.evaluate.tie_policy, seed=params.seed, extra=extra, stage=stage,
                           checkpointing=checkpointing, parallel=inputs.parallel,
                           on_epoch=curves.log_epoch, on_resume=curves.log_history)
        if not inputs.parallel.is_main:
            shutdown_parallel()
            return 0
        with atomic_directory(Path("models") / stage) as staging:
            save_model(model, staging, {"best_epoch": result.best_epoch, **(model_info or {})})
        reported = {**(summary() if summary else {}), "precision": resolve_precision(config.precision, device)}
        curves.set_summary(training_summary(result, params.evaluate.tie_policy, reported, device=device))
    checkpointing.clear()  # outputs are written: the snapshot has served its purpose
    shutdown_parallel()
    return 0
