"""Stage train (NTAT): train with the chosen negatives (dhns: generated ones too).

`train.protocol: finetune` continues from the pretrained model and the trained generator; `joint` (the
paper's protocol) starts both from their seed's random initialisation, the model as pretraining starts it,
and trains the generator on every batch before the KGC step.
"""

import dataclasses
import logging

from dhns.config import load_params
from dhns.distributed import launched_by_torchrun, relaunch_under_torchrun
from dhns.training.ntat import build_negatives, first_batch_breakdown, train_starting_point
from dhns.pipeline import load_stage_inputs
from dhns.training.kgc import run_kgc_stage
from dhns.stage import run_stage


def main() -> int:
    num_processes = load_params().train.num_processes
    if num_processes > 1 and not launched_by_torchrun():
        return relaunch_under_torchrun(num_processes, __file__)
    inputs = load_stage_inputs()
    params, device, graph, features = inputs.params, inputs.device, inputs.graph, inputs.features
    config = params.train
    model, generator = train_starting_point(params, graph.num_entities, graph.num_relations, features, device)
    sampler, extra = build_negatives(config, graph.train, graph.num_entities, graph.num_relations, generator)
    breakdown = None
    if extra is not None:  # how large mu * L_hard is against the base loss, for both forms, before training
        breakdown = first_batch_breakdown(model, sampler, extra, graph.train[: config.batch_size].to(device),
                                          config, params.seed)
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

    return run_kgc_stage("train", inputs, model, sampler, config, extra=extra,
                         model_info={"sampler": config.sampler}, summary=summary)


if __name__ == "__main__":
    run_stage(main)
