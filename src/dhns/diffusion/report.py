"""How hard the generated negatives are, per semantic level and hardness step.

For a sample of triples and every kept step k: the mean L2 distance of generated heads/tails to the true
entity's view, their mean KGC score under the scorer's own comparison, and the share whose nearest
entity (at that level) is a known true answer: a generated negative that lands on a true entity would
teach the model to push a fact down. Fewer steps left (smaller k) should mean closer and higher scoring.
"""

from __future__ import annotations

from typing import Sequence

import torch

from dhns.diffusion.generator import HierarchicalGenerator, level_views, side_conditions
from dhns.evaluation import FilterIndex
from dhns.models.kgc import KGCModel

Tensor = torch.Tensor


def nearest_entities(points: Tensor, table: Tensor, chunk: int = 1024) -> Tensor:
    """(B, w) points, (N, w) table -> (B,) index of the nearest table row (L2), in chunks of points."""
    return torch.cat([torch.cdist(points[i : i + chunk], table).argmin(dim=1) for i in range(0, len(points), chunk)])


def hardness_report(
    generator: HierarchicalGenerator,
    model: KGCModel,
    triples: Tensor,
    filter_index: FilterIndex,
    keep_steps: Sequence[int],
    rng: torch.Generator | None = None,
) -> dict:
    """Nested JSON-ready dict: levels.<level>.<side>.step_<k>.{mean_distance, mean_score, false_negative_share}."""
    return hardness_diagnostics(generator, model, triples, filter_index, keep_steps, rng)[0]


def score_histogram_rows(scores: dict[tuple[str, str], dict[int, Tensor]], bins: int = 40) -> list[dict]:
    """Long-format rows (view, steps_left, score, density) for `dvc plots`: one density curve per step.

    The steps of one view share their bin edges, so the curves are directly comparable: harder levels
    (fewer steps left) should sit to the right, nearer the true triples' scores.
    """
    rows = []
    for (level, side), per_step in scores.items():
        values = torch.cat(list(per_step.values())).float().cpu()
        low, high = float(values.min()), float(values.max())
        high = high if high > low else low + 1.0
        width = (high - low) / bins
        centres = low + width * (torch.arange(bins) + 0.5)
        for k, sample in sorted(per_step.items()):
            counts = torch.histc(sample.float().cpu(), bins=bins, min=low, max=high)
            density = counts / (counts.sum().clamp(min=1) * width)
            rows.extend({"view": f"{level}/{side}", "steps_left": k, "score": round(float(c), 5),
                         "density": round(float(d), 6)} for c, d in zip(centres, density))
    return rows


@torch.no_grad()
def hardness_diagnostics(
    generator: HierarchicalGenerator,
    model: KGCModel,
    triples: Tensor,
    filter_index: FilterIndex,
    keep_steps: Sequence[int],
    rng: torch.Generator | None = None,
    bins: int = 40,
) -> tuple[dict, list[dict]]:
    """The hardness report and the score histogram rows, from one generation."""
    model.eval()
    generated = generator.generate(model, triples, keep_steps, generator=rng)
    all_ids = torch.arange(model.num_entities, device=model.device)
    tables = level_views(model, all_ids)  # level -> (N, w)
    known = {"tail": filter_index.tail_mask(triples[:, 0], triples[:, 1]),
             "head": filter_index.head_mask(triples[:, 1], triples[:, 2])}  # (B, N) other true answers
    truth_ids = {"tail": triples[:, 2], "head": triples[:, 0]}
    rows = torch.arange(triples.shape[0], device=triples.device)
    report: dict = {}
    scores: dict[tuple[str, str], dict[int, Tensor]] = {}
    for level in generator.levels:
        table = tables[level]
        conditions = side_conditions(model, triples, table[triples[:, 0]], table[triples[:, 2]])
        for side in ("head", "tail"):
            truth = table[truth_ids[side]]
            entries = {}
            for k in sorted(keep_steps):
                sample = generated[level][side][k]
                nearest = nearest_entities(sample, table)
                is_true = known[side][rows, nearest] | (nearest == truth_ids[side])
                sample_scores = model.interaction.compare(conditions[side], sample)
                scores.setdefault((level, side), {})[k] = sample_scores
                entries[f"step_{k}"] = {
                    "mean_distance": float((sample - truth).norm(dim=1).mean()),
                    "mean_score": float(sample_scores.mean()),
                    "false_negative_share": float(is_true.float().mean()),
                }
            distances = [entries[f"step_{k}"]["mean_distance"] for k in sorted(keep_steps)]
            means = [entries[f"step_{k}"]["mean_score"] for k in sorted(keep_steps)]
            entries["easy_to_hard_ordered"] = all(a <= b for a, b in zip(distances, distances[1:])) and all(
                a >= b for a, b in zip(means, means[1:]))
            report.setdefault(level, {})[side] = entries
    return {"levels": report}, score_histogram_rows(scores, bins)
