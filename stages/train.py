"""Stage train (NTAT): train with the chosen negatives (dhns: generated ones too).

`train.protocol: finetune` continues from the pretrained model and the trained generator; `joint` (the
paper's protocol) starts both from their seed's random initialisation, the model as pretraining starts it,
and trains the generator on every batch before the KGC step.
"""

import dataclasses
import logging

from dhns.pipeline.inputs import load_stage_inputs, relaunch_if_parallel, stage_params
from dhns.pipeline.kgc import run_kgc_stage
from dhns.pipeline.starting_point import train_starting_point
from dhns.stage import run_stage
from dhns.training.ntat import build_train_objective, first_batch_breakdown


def main() -> int:
    params = stage_params()
    relaunched = relaunch_if_parallel(params.train.num_processes, __file__)
    if relaunched is not None:
        return relaunched
    inputs = load_stage_inputs(params)
    device, graph, config = inputs.device, inputs.graph, params.train
    model, generator = train_starting_point(params, graph.num_entities, graph.num_relations, inputs.features, device)
    objective = build_train_objective(config, graph.train, graph.num_entities, graph.num_relations, generator)
    extra = objective.extra
    breakdown = None
    if extra is not None:  # how large mu * L_hard is against the base loss, for both forms, before training
        breakdown = first_batch_breakdown(model, objective, graph.train[: config.batch_size].to(device), params.seed)
    logging.info("train %s with %s negatives on %s (%s), protocol %s", model.config.name, config.sampler, graph.name,
                 device, config.protocol)

    def summary() -> dict:
        return {
            "protocol": config.protocol,
            "sampler": config.sampler,
            "negatives": dataclasses.asdict(config.negatives),  # the preset as resolved, with any axis overridden
            "hard_loss": config.hard_loss if extra is not None else "none",
            "generator_steps": extra.generator_steps if extra is not None else 0,
            **({"first_batch": breakdown} if breakdown is not None else {}),
        }

    return run_kgc_stage("train", inputs, model, objective, summary=summary,
                         model_info={"sampler": config.sampler, "negatives": dataclasses.asdict(config.negatives),
                                     "hard_loss": config.hard_loss if extra is not None else "none"})


if __name__ == "__main__":
    run_stage(main)
