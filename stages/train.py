"""Stage train (NTAT): continue from the pretrained model with the chosen negatives (dhns: generated ones too)."""

import logging
import sys
from pathlib import Path

from dhns.checkpoint import Checkpointing
from dhns.config import load_params
from dhns.diffusion.generator import load_generator
from dhns.distributed import launched_by_torchrun, relaunch_under_torchrun, shutdown_parallel
from dhns.evaluation import build_filter_index
from dhns.io import atomic_directory
from dhns.live import StageCurves
from dhns.models.kgc import load_model, save_model
from dhns.ntat import HardNegativeObjective, first_batch_breakdown
from dhns.pipeline import load_stage_inputs
from dhns.sampling import make_sampler
from dhns.training import train_kgc, training_summary


def main() -> int:
    num_processes = load_params().train.num_processes
    if num_processes > 1 and not launched_by_torchrun():
        return relaunch_under_torchrun(num_processes, __file__)
    inputs = load_stage_inputs()
    params, device, graph, features = inputs.params, inputs.device, inputs.graph, inputs.features
    config = params.train
    model = load_model(Path("models/pretrain"), features, device)
    sampler = make_sampler(config.sampler, graph.train, graph.num_entities, graph.num_relations, config.num_negatives)
    extra = None
    if config.sampler == "dhns":
        extra = HardNegativeObjective(load_generator(Path("models/diffusion"), device), config.hardness_levels,
                                      config.hard_loss_weight, config.joint_generator, config.generator_lr,
                                      config.diffusion_loss, hard_loss=config.hard_loss,
                                      distmult_hard_margin=config.distmult_hard_margin)
    filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
    breakdown = None
    if extra is not None:  # how large mu * L_hard is against the base loss, for both forms, before training
        breakdown = first_batch_breakdown(model, sampler, extra, graph.train[: config.batch_size].to(device),
                                          config, params.seed)
    logging.info("train %s with %s negatives on %s (%s)", model.config.name, config.sampler, graph.name, device)
    checkpointing = Checkpointing(Path("checkpoints/train"), config.checkpoint_every)
    with StageCurves("train", enabled=inputs.parallel.is_main) as curves:  # rank 0 writes the outputs
        result = train_kgc(model, graph.train, graph.valid, filter_index, sampler, config,
                           tie_policy=params.evaluate.tie_policy, seed=params.seed, extra=extra, stage="train",
                           checkpointing=checkpointing, parallel=inputs.parallel,
                           on_epoch=curves.log_epoch, on_resume=curves.log_history)
        if not inputs.parallel.is_main:
            shutdown_parallel()
            return 0
        with atomic_directory(Path("models/train")) as staging:
            save_model(model, staging, {"best_epoch": result.best_epoch, "sampler": config.sampler})
        curves.set_summary(training_summary(result, params.evaluate.tie_policy, {
            "sampler": config.sampler,
            "hard_loss": config.hard_loss if extra is not None else "none",
            "generator_steps": extra.generator_steps if extra is not None else 0,
            **({"first_batch": breakdown} if breakdown is not None else {}),
        }))
    checkpointing.clear()  # outputs are written: the snapshot has served its purpose
    shutdown_parallel()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    sys.exit(main())
