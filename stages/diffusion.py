"""Stage diffusion: train the DiffHEG generator on the pretrained model and measure its hardness levels."""

import logging

from dhns.diffusion.generator import generator_for, save_generator
from dhns.diffusion.report import hardness_diagnostics
from dhns.evaluation import build_filter_index
from dhns.io import atomic_directory
from dhns.live import StageCurves
from dhns.models.kgc import load_model
from dhns.pipeline.inputs import load_stage_inputs, skip_under_protocol, stage_params
from dhns.pipeline.paths import checkpoint_dir, model_dir
from dhns.stage import run_stage
from dhns.training.checkpoint import Checkpointing
from dhns.training.diffusion import train_generator


def main() -> None:
    params = stage_params()
    if skip_under_protocol(params, "diffusion"):  # joint: the train stage trains its own generator, from scratch
        return
    inputs = load_stage_inputs(params)
    params, device, graph, features = inputs.params, inputs.device, inputs.graph, inputs.features
    config = params.diffusion
    model = load_model(model_dir("pretrain"), features, device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    generator = generator_for(model, config)
    logging.info("diffusion: levels %s, width %d, T = %d", ", ".join(generator.levels), generator.width,
                 config.num_diffusion_steps)
    checkpointing = Checkpointing(checkpoint_dir("diffusion"), config.checkpoint_every)
    with StageCurves("diffusion") as curves:
        history = train_generator(generator, model, graph.train, config, seed=params.seed,
                                  checkpointing=checkpointing, on_epoch=curves.log_epoch,
                                  on_resume=curves.log_history)
        logging.info("diffusion: final loss %.4f after %d epochs", history[-1]["loss"], len(history))

        sample = graph.valid[: config.report_triples].to(device)
        filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
        reports, histogram = hardness_diagnostics(generator, model, sample, filter_index, config.report_steps,
                                                  params.seed, config.report_chains)
        with atomic_directory(model_dir("diffusion")) as staging:
            save_generator(generator, staging)
        curves.log_table("hardness", histogram, x="score", y="density", template="hardness")
        curves.set_summary({
            "loss": history[-1]["loss"],
            "seconds": round(sum(row["seconds"] for row in history), 2),
            "report_triples": int(sample.shape[0]),
            "chains": reports,
        })
    checkpointing.clear()  # outputs are written: the snapshot has served its purpose


if __name__ == "__main__":
    run_stage(main)
