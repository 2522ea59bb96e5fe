"""What every modelling stage starts from: params (read once), the seeded device, the graph and its features;
and the stages that `train.protocol` leaves with nothing to do."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from dhns.config import Params, load_params
from dhns.data import KnowledgeGraph, load_prepared
from dhns.distributed import SINGLE_PROCESS, Parallel, init_parallel, launched_by_torchrun, relaunch_under_torchrun
from dhns.features.bundle import read_feature_bundle
from dhns.host import resolve_device, seed_everything
from dhns.pipeline.paths import FEATURES_DIR, PARAMS_FILE, PREPARED_DIR, metrics_file, model_dir, plots_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageInputs:
    params: Params
    device: torch.device
    graph: KnowledgeGraph
    features: dict[str, tuple[torch.Tensor, torch.Tensor]]  # modality -> (vectors (N, d), present (N,))
    parallel: Parallel = SINGLE_PROCESS  # this rank, when torchrun launched the stage


def stage_params(path: str | Path = PARAMS_FILE) -> Params:
    """The whole params file, read and checked once per stage run."""
    return load_params(path)


def load_stage_inputs(params: Params) -> StageInputs:
    seed_everything(params.seed)
    graph = load_prepared(PREPARED_DIR)
    features = read_feature_bundle(FEATURES_DIR, graph.num_entities)
    parallel, device = init_parallel(resolve_device(params.device))
    return StageInputs(params, device, graph, features, parallel)


def relaunch_if_parallel(num_processes: int, script: str) -> int | None:
    """Under `num_processes > 1` and not yet under torchrun: run `script` under it, and return its exit code."""
    if num_processes > 1 and not launched_by_torchrun():
        return relaunch_under_torchrun(num_processes, script)
    return None


# what each skippable stage leaves besides models/<stage>/SKIPPED.json and metrics/<stage>.json
SKIPPED_FILES: dict[str, dict[str, str]] = {
    "pretrain": {},
    "diffusion": {"custom/hardness.json": "[]\n"},  # under plots/diffusion: the densities plot, empty
}


def skip_under_protocol(params: Params, stage: str) -> bool:
    """True, with the outputs DVC expects written, when `train.protocol` leaves `stage` nothing to do.

    The joint protocol trains the KGC model and the generator in the train stage from scratch: pretrain and
    diffusion still end in seconds and keep the pipeline's shape, each output saying why it is empty, so
    `dvc metrics show` says why there is no number.
    """
    if stage not in params.train.protocol_rules.skipped_stages:
        return False
    note = {"skipped": True,
            "reason": f"train.protocol is {params.train.protocol}: the train stage trains the KGC model and the "
                      "generator from their random initialisation, so nothing of this stage is used"}
    text = json.dumps(note, indent=2) + "\n"
    (plots_dir(stage) / "metrics").mkdir(parents=True, exist_ok=True)
    for name, content in SKIPPED_FILES[stage].items():
        (plots_dir(stage) / name).parent.mkdir(parents=True, exist_ok=True)
        (plots_dir(stage) / name).write_text(content, encoding="utf-8")
    model_dir(stage).mkdir(parents=True, exist_ok=True)
    (model_dir(stage) / "SKIPPED.json").write_text(text, encoding="utf-8")
    metrics_file(stage).parent.mkdir(exist_ok=True)
    metrics_file(stage).write_text(text, encoding="utf-8")
    log.info("%s: skipped (%s)", stage, note["reason"])
    return True
