"""What every modelling stage starts from: params, the seeded device, the graph and its features.

Kept apart from the training loop (`dhns.training.kgc.run_kgc_stage`), so the stages that only load a model
(diffusion, evaluate) do not depend on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dhns.config import Params, load_params
from dhns.data import KnowledgeGraph, load_prepared
from dhns.distributed import SINGLE_PROCESS, Parallel, init_parallel
from dhns.features.bundle import read_feature_bundle
from dhns.host import resolve_device, seed_everything

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
