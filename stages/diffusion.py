"""Stage diffusion: train the DiffHEG generator on the pretrained model and measure its hardness levels."""

import logging
from pathlib import Path

from dhns.diffusion.generator import generator_for, save_generator
from dhns.training.checkpoint import Checkpointing
from dhns.diffusion.report import hardness_diagnostics
from dhns.training.diffusion import train_generator
from dhns.evaluation import build_filter_index
from dhns.io import atomic_directory
from dhns.live import StageCurves
from dhns.models.kgc import load_model
from dhns.pipeline import load_stage_inputs
from dhns.config import load_params
from dhns.stage import JOINT_SKIP_REASON, run_stage, write_skipped_outputs


def main() -> None:
    if load_params().train.protocol == "joint":  # the train stage trains its own generator, from scratch
        write_skipped_outputs("diffusion", JOINT_SKIP_REASON, ("plots/diffusion/metrics",),
                              {"plots/diffusion/custom/hardness.json": "[]\n"})
        return
    inputs = load_stage_inputs()
    params, device, graph, features = inputs.params, inputs.device, inputs.graph, inputs.features
    config = params.diffusion
    model = load_model(Path("models/pretrain"), features, device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    generator = generator_for(model, config)
    logging.info("diffusion: levels %s, width %d, T = %d", ", ".join(generator.levels), generator.width,
                 config.num_diffusion_steps)
    checkpointing = Checkpointing(Path("checkpoints/diffusion"), config.checkpoint_every)
    with StageCurves("diffusion") as curves:
        history = train_generator(generator, model, graph.train, config, seed=params.seed,
                                  checkpointing=checkpointing, on_epoch=curves.log_epoch,
                                  on_resume=curves.log_history)
        logging.info("diffusion: final loss %.4f after %d epochs", history[-1]["loss"], len(history))

        sample = graph.valid[: config.report_triples].to(device)
        filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
        reports, histogram = hardness_diagnostics(generator, model, sample, filter_index, config.report_steps,
                                                  params.seed, config.report_chains)
        with atomic_directory(Path("models/diffusion")) as staging:
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
