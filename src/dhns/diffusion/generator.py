"""DiffHEG: one conditional diffusion generator per semantic level, driven by a pretrained KGC model.

A semantic level is one view of an entity: `structural` (its learned embedding) and each available
modality (`text`, `image`: its projected features). For a triple (h, r, t) the tail generator is
conditioned on C(h, r) = the scorer's tail query of h's view at that level, and the head generator on
the head query of t's view; each side runs its own reverse chain. Views and conditions are detached:
the generator never sends a gradient into the KGC model.

Diffusion runs in a standardised space: each level's vectors are divided by that level's entity-table
standard deviation, so the N(0, I) noise of the schedule is on the data's scale whatever the scorer's
initialisation, and samples are scaled back before use.

Sampling runs all levels and both sides as one chain of (L, 2B, w) states, one batched denoiser call per
reverse step (`DenoiserStack`); each level keeps its own denoiser module, trained and saved on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import save_file
from torch import nn

from dhns.diffusion.denoiser import ConditionalDenoiser, DenoiserStack
from dhns.config import DiffusionConfig, ReverseChain
from dhns.diffusion.schedule import GaussianDiffusion
from dhns.io import atomic_file, read_json, read_safetensors, require_files, stage_hint, write_json
from dhns.models.kgc import KGCModel

Tensor = torch.Tensor
SIDES = ("head", "tail")


def level_views(model: KGCModel, entity_ids: Tensor) -> dict[str, Tensor]:
    """Detached per-level entity vectors (..., w): structural plus each modality's projection."""
    return {name: view.detach() for name, view in model.entities.modality_embeddings(entity_ids).items()}


def level_presence(model: KGCModel, entity_ids: Tensor) -> dict[str, Tensor]:
    """(...,) bool per level: whether the entity has that modality (structural: always)."""
    return model.entities.modality_presence(entity_ids)


def side_conditions(model: KGCModel, triples: Tensor, views_head: Tensor, views_tail: Tensor) -> dict[str, Tensor]:
    """Condition of each side's generator: the tail query C(h, r) and the head query C(t, r)."""
    relations = model.relations(triples[:, 1]).detach()
    return {
        "tail": model.interaction.tail_query(views_head, relations),
        "head": model.interaction.head_query(relations, views_tail),
    }


class HierarchicalGenerator(nn.Module):
    """Denoisers for every semantic level, sharing one diffusion schedule."""

    def __init__(
        self,
        levels: Sequence[str],
        width: int,
        diffusion: GaussianDiffusion,
        scales: dict[str, float],
        hidden_multiplier: int = 4,
    ) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.width = width
        self.hidden_multiplier = hidden_multiplier
        self.diffusion = diffusion
        self.denoisers = nn.ModuleDict({level: ConditionalDenoiser(width, hidden_multiplier=hidden_multiplier)
                                        for level in self.levels})
        self.register_buffer("scales", torch.tensor([float(scales[level]) for level in self.levels]))

    def scale(self, level: str) -> Tensor:
        return self.scales[self.levels.index(level)]

    def loss(self, model: KGCModel, triples: Tensor, *, loss_type: str = "l1",
             generator: torch.Generator | None = None) -> Tensor:
        """Noise-prediction loss summed over levels and both sides, averaged over rows that have the level."""
        heads, tails = level_views(model, triples[:, 0]), level_views(model, triples[:, 2])
        present_h, present_t = level_presence(model, triples[:, 0]), level_presence(model, triples[:, 2])
        total = triples.new_zeros((), dtype=torch.float32)
        for level in self.levels:
            conditions = side_conditions(model, triples, heads[level], tails[level])
            keep = present_h[level] & present_t[level]  # (B,) both ends have this view
            scale = self.scale(level)
            for side, target in (("tail", tails[level]), ("head", heads[level])):
                # a mask, not a row selection: no host sync, and a level no row has adds exactly 0 (not NaN)
                total = total + self.diffusion.training_loss(
                    self.denoisers[level], target / scale, conditions[side] / scale,
                    loss_type=loss_type, generator=generator, mask=keep,
                )
        return total

    @torch.no_grad()
    def generate(self, model: KGCModel, triples: Tensor, keep_steps: Sequence[int],
                 generator: torch.Generator | None = None, *,
                 chain: ReverseChain) -> dict[str, dict[str, dict[int, Tensor]]]:
        """Hierarchical negatives: result[level][side][k] is (B, w), the state with k denoising steps left.

        Every level's head and tail chains run as one (L, 2B, w) chain: independent chains, one batched
        denoiser call per step. Random numbers: the chain takes one 64-bit key from `generator`, then its
        normals are counter-based (`dhns.diffusion.noise.ChainNoise`): the start x_T is draw 0 and each step's
        noise the next draw, each (L, 2B, w) ordered level by level (in `levels` order), head rows before tail
        rows. A fixed seed gives fixed negatives, and each call advances `generator` by one key, so successive
        chains differ. `chain` is the full DDPM chain or a strided one (fewer calls, and with eta = 0 no draws
        after x_T).
        """
        heads, tails = level_views(model, triples[:, 0]), level_views(model, triples[:, 2])
        batch = triples.shape[0]
        stacked = []
        for level in self.levels:
            conditions = side_conditions(model, triples, heads[level], tails[level])
            stacked.append(torch.cat([conditions["head"], conditions["tail"]]))  # (2B, w)
        scales = self.scales[:, None, None]  # (L, 1, 1)
        states = self.diffusion.sample_chain(self.denoiser_stack(), torch.stack(stacked) / scales, keep_steps,
                                             generator=generator, chain=chain)  # k -> (L, 2B, w)
        return {
            level: {
                "head": {k: state[index, :batch] * scales[index] for k, state in states.items()},
                "tail": {k: state[index, batch:] * scales[index] for k, state in states.items()},
            }
            for index, level in enumerate(self.levels)
        }

    def denoiser_stack(self) -> DenoiserStack:
        """The levels' denoisers, in `levels` order, as one batched denoiser for sampling."""
        return DenoiserStack([self.denoisers[level] for level in self.levels])


def level_scales(model: KGCModel) -> dict[str, float]:
    """Standard deviation of each level's entity table (present entities only)."""
    ids = torch.arange(model.num_entities, device=model.device)
    with torch.no_grad():
        views, present = level_views(model, ids), level_presence(model, ids)
        return {level: float(views[level][present[level]].std().clamp(min=1e-8)) for level in views}


def build_generator(model: KGCModel, num_steps: int, beta_start: float, beta_end: float,
                    hidden_multiplier: int = 4) -> HierarchicalGenerator:
    scales = level_scales(model)
    diffusion = GaussianDiffusion(num_steps, beta_start, beta_end)
    width = model.interaction.entity_width
    return HierarchicalGenerator(tuple(scales), width, diffusion, scales, hidden_multiplier).to(model.device)


def generator_for(model: KGCModel, config: DiffusionConfig) -> HierarchicalGenerator:
    """A fresh generator for `model` as params' diffusion section describes it (the diffusion stage's, and the
    joint protocol's in the train stage)."""
    return build_generator(model, config.num_diffusion_steps, config.beta_start, config.beta_end,
                           config.hidden_multiplier)


def save_generator(generator: HierarchicalGenerator, folder: str | Path) -> None:
    """Denoiser weights as safetensors plus what rebuilding needs (levels, width, scales, schedule)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / "generator.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}, str(tmp))
    schedule = generator.diffusion
    description = {
        "levels": list(generator.levels),
        "width": generator.width,
        "scales": {level: float(generator.scale(level)) for level in generator.levels},
        "num_diffusion_steps": schedule.num_steps,
        "beta_start": schedule.beta_start,
        "beta_end": schedule.beta_end,
        "hidden_multiplier": generator.hidden_multiplier,
    }
    write_json(folder / "generator.json", description)


def load_generator(folder: str | Path, device: torch.device | str = "cpu") -> HierarchicalGenerator:
    folder = Path(folder)
    hint = stage_hint("diffusion")
    require_files(folder, ("generator.json", "generator.safetensors"), hint)  # names the stage when missing
    description = read_json(folder / "generator.json")
    diffusion = GaussianDiffusion(description["num_diffusion_steps"], description["beta_start"], description["beta_end"])
    generator = HierarchicalGenerator(description["levels"], description["width"], diffusion,
                                      description["scales"], description["hidden_multiplier"])
    generator.load_state_dict(read_safetensors(folder / "generator.safetensors", hint))
    return generator.to(device).eval()
