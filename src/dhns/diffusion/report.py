"""How hard the generated negatives are, as NTAT sees them and per semantic level, at each hardness step.

For a sample of triples and every kept step k: the mean L2 distance of generated heads/tails to the true
entity, their mean KGC score, and the share whose nearest entity is a known true answer (a generated
negative that lands on a true entity would teach the model to push a fact down). `fused` fuses each
side's generated views with the model's attention over the views the true entity has and scores them
against the fused true triple, exactly as the reference NTAT loss does, beside the positives' own mean
score and the attention weights; `levels` measures each semantic level's view at that level alone (what
the per-view form trains on). Fewer steps left (smaller k) should mean closer and higher scoring.
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
    """The hardness report and the score histogram rows, from one generation.

    `fused` is what NTAT trains on: each side's generated views fused by the model's attention over the
    views the true entity has, scored by the model against the fused true other end; `levels` scores each
    semantic level's view against the condition at that level alone.
    """
    model.eval()
    generated = generator.generate(model, triples, keep_steps, generator=rng)
    all_ids = torch.arange(model.num_entities, device=model.device)
    tables = level_views(model, all_ids)  # level -> (N, w)
    known = {"tail": filter_index.tail_mask(triples[:, 0], triples[:, 1]),
             "head": filter_index.head_mask(triples[:, 1], triples[:, 2])}  # (B, N) other true answers
    truth_ids = {"tail": triples[:, 2], "head": triples[:, 0]}
    report: dict = {}
    scores: dict[tuple[str, str], dict[int, Tensor]] = {}
    for level in generator.levels:
        table = tables[level]
        conditions = side_conditions(model, triples, table[triples[:, 0]], table[triples[:, 2]])
        for side in ("head", "tail"):
            samples = {k: generated[level][side][k] for k in keep_steps}
            sample_scores = {k: model.interaction.compare(conditions[side], sample) for k, sample in samples.items()}
            report.setdefault(level, {})[side] = _side_entries(samples, sample_scores, table, truth_ids[side],
                                                               known[side])
            scores[(level, side)] = sample_scores
    fused_report, fused_scores = _fused_entries(model, triples, generated, keep_steps, known)
    scores.update({("fused", side): per_step for side, per_step in fused_scores.items()})
    return {"fused": fused_report, "levels": report}, score_histogram_rows(scores, bins)


def _side_entries(samples: dict[int, Tensor], sample_scores: dict[int, Tensor], table: Tensor, truth_ids: Tensor,
                  known: Tensor) -> dict:
    """Per step: distance to the truth, mean score, and the share whose nearest table entity is a true answer."""
    rows = torch.arange(truth_ids.shape[0], device=truth_ids.device)
    truth = table[truth_ids]
    entries = {}
    for k in sorted(samples):
        nearest = nearest_entities(samples[k], table)
        is_true = known[rows, nearest] | (nearest == truth_ids)
        entries[f"step_{k}"] = {
            "mean_distance": float((samples[k] - truth).norm(dim=1).mean()),
            "mean_score": float(sample_scores[k].mean()),
            "false_negative_share": float(is_true.float().mean()),
        }
    distances = [entries[f"step_{k}"]["mean_distance"] for k in sorted(samples)]
    means = [entries[f"step_{k}"]["mean_score"] for k in sorted(samples)]
    entries["easy_to_hard_ordered"] = all(a <= b for a, b in zip(distances, distances[1:])) and all(
        a >= b for a, b in zip(means, means[1:]))
    return entries


def _fused_entries(model: KGCModel, triples: Tensor, generated: dict, keep_steps: Sequence[int],
                   known: dict[str, Tensor]) -> tuple[dict, dict[str, dict[int, Tensor]]]:
    """The fused report: generated entities as NTAT scores them, beside the true triples' own scores."""
    interaction, entities = model.interaction, model.entities
    table = model.entities.all_entities()
    heads, tails, relations = table[triples[:, 0]], table[triples[:, 2]], model.relations(triples[:, 1])
    present = {"head": entities.modality_presence(triples[:, 0]), "tail": entities.modality_presence(triples[:, 2])}
    truth_ids = {"tail": triples[:, 2], "head": triples[:, 0]}
    positive = interaction.compare(interaction.tail_query(heads, relations), tails)
    report: dict = {"positive_mean_score": float(positive.mean())}
    scores: dict[str, dict[int, Tensor]] = {}
    for side in ("head", "tail"):
        samples, sample_scores, attention = {}, {}, {}
        for k in keep_steps:
            views = {name: generated[name][side][k] for name in entities.view_names}
            samples[k] = entities.fuse(views, present[side])
            head, tail = (samples[k], tails) if side == "head" else (heads, samples[k])
            sample_scores[k] = interaction.compare(interaction.tail_query(head, relations), tail)
            if entities.modalities:
                attention[k] = _mean_view_weights(entities.view_names, entities.attention_weights(views, present[side]))
        entries = _side_entries(samples, sample_scores, table, truth_ids[side], known[side])
        for k, weights in attention.items():
            entries[f"step_{k}"]["attention"] = weights
        report[side] = entries
        scores[side] = sample_scores
    if entities.modalities:
        real = entities.attention_weights(entities.modality_embeddings(triples[:, 2]), present["tail"])
        report["true_tail_attention"] = _mean_view_weights(entities.view_names, real)
    return report, scores


def _mean_view_weights(view_names: Sequence[str], weights: Tensor) -> dict[str, float]:
    """(B, M) attention weights -> {view: mean weight}, for the report."""
    return dict(zip(view_names, (round(float(w), 4) for w in weights.mean(dim=0))))
