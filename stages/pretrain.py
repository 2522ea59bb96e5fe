"""Stage pretrain: fit the structural + multimodal KGC model with a classic negative sampler."""

import logging
import sys
from pathlib import Path

from dhns.checkpoint import Checkpointing
from dhns.config import load_params
from dhns.distributed import launched_by_torchrun, relaunch_under_torchrun, shutdown_parallel
from dhns.evaluation import build_filter_index
from dhns.io import atomic_directory
from dhns.live import StageCurves
from dhns.models.kgc import KGCModel, save_model
from dhns.pipeline import load_stage_inputs
from dhns.sampling import make_sampler
from dhns.training import train_kgc, training_summary


def main() -> int:
    num_processes = load_params().pretrain.num_processes
    if num_processes > 1 and not launched_by_torchrun():
        return relaunch_under_torchrun(num_processes, __file__)
    inputs = load_stage_inputs()
    params, device, graph, features = inputs.params, inputs.device, inputs.graph, inputs.features
    model = KGCModel(params.model, graph.num_entities, graph.num_relations, features).to(device)
    config = params.pretrain
    sampler = make_sampler(config.sampler, graph.train, graph.num_entities, graph.num_relations, config.num_negatives)
    filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
    logging.info("pretrain %s on %s (%s), modalities: structural + %s", params.model.name, graph.name, device,
                 ", ".join(model.entities.modalities) or "none")
    checkpointing = Checkpointing(Path("checkpoints/pretrain"), config.checkpoint_every)
    with StageCurves("pretrain", enabled=inputs.parallel.is_main) as curves:  # rank 0 writes the outputs
        result = train_kgc(model, graph.train, graph.valid, filter_index, sampler, config,
                           tie_policy=params.evaluate.tie_policy, seed=params.seed, stage="pretrain",
                           checkpointing=checkpointing, parallel=inputs.parallel,
                           on_epoch=curves.log_epoch, on_resume=curves.log_history)
        if not inputs.parallel.is_main:
            shutdown_parallel()
            return 0
        with atomic_directory(Path("models/pretrain")) as staging:
            save_model(model, staging, {"best_epoch": result.best_epoch})
        curves.set_summary(training_summary(result, params.evaluate.tie_policy))
    checkpointing.clear()  # outputs are written: the snapshot has served its purpose
    shutdown_parallel()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    sys.exit(main())
