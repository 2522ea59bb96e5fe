"""Stage pretrain: fit the structural + multimodal KGC model with a classic negative sampler."""

import logging

from dhns.models.kgc import KGCModel
from dhns.pipeline.inputs import load_stage_inputs, relaunch_if_parallel, skip_under_protocol, stage_params
from dhns.pipeline.kgc import run_kgc_stage
from dhns.stage import run_stage
from dhns.training.objective import build_objective


def main() -> int:
    params = stage_params()
    if skip_under_protocol(params, "pretrain"):  # joint: the train stage starts from scratch
        return 0
    relaunched = relaunch_if_parallel(params.pretrain.num_processes, __file__)
    if relaunched is not None:
        return relaunched
    inputs = load_stage_inputs(params)
    graph, device = inputs.graph, inputs.device
    model = KGCModel(params.model, graph.num_entities, graph.num_relations, inputs.features).to(device)
    objective = build_objective(params.pretrain, graph.train, graph.num_entities, graph.num_relations)
    logging.info("pretrain %s on %s (%s), modalities: structural + %s", params.model.name, graph.name, device,
                 ", ".join(model.entities.modalities) or "none")
    return run_kgc_stage("pretrain", inputs, model, objective)


if __name__ == "__main__":
    run_stage(main)
