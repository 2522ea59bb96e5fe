"""Where the train stage (and `dhns.tune --stage train`) starts: the protocol decides, through its rules."""

from __future__ import annotations

import torch

from dhns.config import Params
from dhns.diffusion.generator import HierarchicalGenerator, generator_for, load_generator
from dhns.models.kgc import KGCModel, load_model
from dhns.pipeline.paths import model_dir


def train_starting_point(params: Params, num_entities: int, num_relations: int, features: dict | None,
                         device: torch.device) -> tuple[KGCModel, HierarchicalGenerator | None]:
    """The KGC model and generator the train stage starts from (and `dhns.tune --stage train`'s cells).

    From the pretrain stage's model and the diffusion stage's generator (when the negatives use one), or,
    where the protocol starts from scratch, both from random initialisation, built as pretraining and the
    diffusion stage build them: call right after seeding so the model starts where pretraining would.
    """
    config = params.train
    if not config.protocol_rules.starts_from_pretrained:
        model = KGCModel(params.model, num_entities, num_relations, features).to(device)
        generator = generator_for(model, params.diffusion) if config.negatives.uses_generator else None
        return model, generator
    model = load_model(model_dir("pretrain"), features, device)
    if model.config.name != params.model.name:
        raise ValueError(f"models/pretrain holds a {model.config.name} model, not {params.model.name}; run "
                         f"`dvc exp run -S model.name={params.model.name} diffusion` first")
    generator = load_generator(model_dir("diffusion"), device) if config.negatives.uses_generator else None
    return model, generator
