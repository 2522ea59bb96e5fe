"""Stage pretrain: fit the structural + multimodal KGC model with a classic negative sampler."""

import logging

from dhns.config import load_params
from dhns.distributed import launched_by_torchrun, relaunch_under_torchrun
from dhns.models.kgc import KGCModel
from dhns.pipeline import load_stage_inputs
from dhns.training.kgc import run_kgc_stage
from dhns.sampling import make_sampler
from dhns.stage import JOINT_SKIP_REASON, run_stage, write_skipped_outputs


def main() -> int:
    if load_params().train.protocol == "joint":  # nothing to pretrain: the train stage starts from scratch
        write_skipped_outputs("pretrain", JOINT_SKIP_REASON, ("plots/pretrain/metrics",), {})
        return 0
    num_processes = load_params().pretrain.num_processes
    if num_processes > 1 and not launched_by_torchrun():
        return relaunch_under_torchrun(num_processes, __file__)
    inputs = load_stage_inputs()
    params, device, graph, features = inputs.params, inputs.device, inputs.graph, inputs.features
    model = KGCModel(params.model, graph.num_entities, graph.num_relations, features).to(device)
    config = params.pretrain
    sampler = make_sampler(config.negatives.corruption, graph.train, graph.num_entities, graph.num_relations,
                           config.num_negatives)
    logging.info("pretrain %s on %s (%s), modalities: structural + %s", params.model.name, graph.name, device,
                 ", ".join(model.entities.modalities) or "none")
    return run_kgc_stage("pretrain", inputs, model, sampler, config)


if __name__ == "__main__":
    run_stage(main)
