"""Answer one link-prediction query, (head, relation, ?) or (?, relation, tail), with the trained model.

The evaluate stage reports aggregate ranks only; asking the model about a named entity is how a person
checks what it has actually learned. The ranking uses the evaluator's filtered setting: every answer
already known from train, valid or test is removed, so the list shows what the model proposes beyond
the graph. The query's own entity is dropped when the relation has no self-loop in train (a model
that scores (x, r, x) high then only shows a known artefact of translation scorers), and kept, marked
`self`, when train has self-loops for it (DB15K has some) or when asked to.

Names are resolved forgivingly (exact name, else a unique case-insensitive match on the name, its
cleaned form or its label) because benchmark names are URIs or Wikidata ids nobody types from memory;
anything else is a `PredictionError` that suggests close matches.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from dhns.pipeline.paths import model_dir
from dhns.data import DATASET_FILE, SPLITS, KnowledgeGraph, clean_entity_name, clean_relation_name, load_prepared
from dhns.features.bundle import read_feature_bundle
from dhns.io import read_json, require_files, stage_hint
from dhns.models.kgc import KGCModel, load_model
from dhns.host import resolve_device

TRAINED_MODEL_DIR = model_dir("train")
TARGETS: tuple[str, ...] = ("head", "tail")  # which side of the triple is predicted
MAX_SUGGESTIONS = 5
DESCRIPTION_WIDTH = 48


class PredictionError(ValueError):
    """A query or its inputs cannot be answered; the message says what to type or run instead."""


@dataclass(frozen=True)
class Candidate:
    """One ranked answer; `rank` counts only the candidates left after filtering."""

    rank: int
    entity_id: int
    name: str
    text: str  # the entity's text as prepared ("Label: description", or the cleaned name)
    score: float  # the model's score, higher = more plausible
    known_in: str | None  # first split holding this triple; only ever set when filtering is off
    is_query_entity: bool  # the answer is the entity the query was asked about (a self-loop)


@dataclass(frozen=True)
class QueryAnswer:
    """A query and its ranked answers, ready to print as a table or JSON."""

    dataset: str
    target: str  # "tail": (entity, relation, ?); "head": (?, relation, entity)
    entity: str
    relation: str
    candidates: tuple[Candidate, ...]
    num_known: int  # distinct known answers to the query in train + valid + test
    filtered: bool
    self_excluded: bool = False  # the query entity was removed from the candidates


# --------------------------------------------------------------------------------------------------
# Loading


def load_for_prediction(
    model_dir: str | Path, prepared_dir: str | Path, features_dir: str | Path, device: str = "cpu"
) -> tuple[KGCModel, KnowledgeGraph]:
    """The trained model (in eval mode) and the graph it was trained on.

    A missing folder is reported with the stage that produces it, since a user asking a question has not
    necessarily run the pipeline yet; the model's sizes are checked against the graph before any weights load.
    """
    model_dir, prepared_dir, features_dir = Path(model_dir), Path(prepared_dir), Path(features_dir)
    require_files(model_dir, ("model.json", "model.safetensors"), stage_hint("train"))
    require_files(prepared_dir, (DATASET_FILE,), stage_hint("prepare"))
    graph = load_prepared(prepared_dir)
    description = read_json(model_dir / "model.json")
    if not isinstance(description, dict):
        raise PredictionError(f"{model_dir / 'model.json'}: expected a JSON object")
    trained_sizes = (description.get("num_entities"), description.get("num_relations"))
    if trained_sizes != (graph.num_entities, graph.num_relations):
        raise PredictionError(
            f"the model in {model_dir}/ was trained on {trained_sizes[0]} entities and {trained_sizes[1]} relations, "
            f"but {prepared_dir}/ ({graph.name}) has {graph.num_entities} and {graph.num_relations}; "
            "retrain on this data: run `dvc repro train`"
        )
    # read_feature_bundle names a missing folder and the features stage itself
    features = read_feature_bundle(features_dir, graph.num_entities) if description.get("modalities") else {}
    model = load_model(model_dir, features, _pick_device(device))
    return model.eval(), graph


def _pick_device(name: str) -> torch.device:
    """`resolve_device`'s rules, with a message about the option rather than about params.yaml."""
    try:
        requested = torch.device(name) if name != "auto" else None
    except RuntimeError:
        raise PredictionError(f"device {name!r} is not a torch device; use cpu, cuda, cuda:N or auto") from None
    if requested is not None and requested.type == "cuda" and not torch.cuda.is_available():
        raise PredictionError(f"device {name!r} asks for CUDA but none is available; use cpu or auto")
    return resolve_device(name)


# --------------------------------------------------------------------------------------------------
# Names


def entity_label(text: str) -> str:
    """The label part of an entity text: DB15K and MKG-W texts read "Label: description"."""
    return text.split(": ", 1)[0].strip()


def resolve_entity(graph: KnowledgeGraph, query: str) -> int:
    """Entity id for a name, or a unique case-insensitive match on its name, cleaned name or label."""
    aliases = [
        {name, clean_entity_name(name), entity_label(text)}
        for name, text in zip(graph.entity_names, graph.entity_texts)
    ]
    return _resolve("entity", query, graph.entity_names, graph.entity_texts, aliases, graph.name)


def resolve_relation(graph: KnowledgeGraph, query: str) -> int:
    """Relation id for a name, or a unique case-insensitive match on its name or its text ("was born in")."""
    aliases = [
        {name, clean_relation_name(name), text} for name, text in zip(graph.relation_names, graph.relation_texts)
    ]
    return _resolve("relation", query, graph.relation_names, graph.relation_texts, aliases, graph.name)


def _resolve(
    kind: str,
    query: str,
    names: Sequence[str],
    texts: Sequence[str],
    aliases: Sequence[set[str]],
    dataset: str,
) -> int:
    """Exact name first; then case-insensitive aliases, which must point at exactly one id."""
    exact = {name: index for index, name in enumerate(names)}
    if query in exact:
        return exact[query]
    by_alias: dict[str, list[int]] = {}
    for index, spellings in enumerate(aliases):
        for spelling in {alias.strip().casefold() for alias in spellings if alias.strip()}:
            by_alias.setdefault(spelling, []).append(index)
    folded = query.strip().casefold()
    matches = by_alias.get(folded, [])
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = "; ".join(_describe(names[index], texts[index]) for index in matches[:MAX_SUGGESTIONS])
        more = f" and {len(matches) - MAX_SUGGESTIONS} more" if len(matches) > MAX_SUGGESTIONS else ""
        raise PredictionError(
            f"{kind} {query!r} is ambiguous in {dataset}: it matches {len(matches)} {_plural(kind)} "
            f"({listed}{more}); "
            "pass the exact name"
        )
    close = difflib.get_close_matches(folded, list(by_alias), n=4 * MAX_SUGGESTIONS, cutoff=0.6)
    suggested = list(dict.fromkeys(index for spelling in close for index in by_alias[spelling]))[:MAX_SUGGESTIONS]
    if suggested:
        hint = "close matches: " + "; ".join(_describe(names[index], texts[index]) for index in suggested)
    else:
        hint = "no close matches; names look like " + ", ".join(repr(name) for name in names[:3])
    raise PredictionError(f"unknown {kind} {query!r} in {dataset}; {hint}")


def _plural(kind: str) -> str:
    return "entities" if kind == "entity" else f"{kind}s"


def _describe(name: str, text: str) -> str:
    """A name as the user must type it, with its label when that says more than the name."""
    label = entity_label(text)
    return f"{name!r} ({label})" if label and label not in (name, clean_entity_name(name)) else repr(name)


# --------------------------------------------------------------------------------------------------
# Ranking


def known_answers(graph: KnowledgeGraph, entity_id: int, relation_id: int, target: str) -> dict[int, str]:
    """Answer id -> the first split (train, valid, test order) in which the completed triple is known."""
    _check_target(target)
    given, answer = (0, 2) if target == "tail" else (2, 0)
    known: dict[int, str] = {}
    for split in SPLITS:
        rows = getattr(graph, split)
        hit = (rows[:, given] == entity_id) & (rows[:, 1] == relation_id)
        for answer_id in rows[hit, answer].tolist():
            known.setdefault(int(answer_id), split)
    return known


def relation_has_self_loops(graph: KnowledgeGraph, relation_id: int) -> bool:
    """Whether train holds some (x, relation, x): only then is the query entity a plausible answer."""
    train = graph.train
    return bool(((train[:, 1] == relation_id) & (train[:, 0] == train[:, 2])).any())


def predict_link(
    model: KGCModel,
    graph: KnowledgeGraph,
    entity_id: int,
    relation_id: int,
    target: str,
    top_k: int = 10,
    filter_known: bool = True,
    exclude_self: bool | None = None,
) -> QueryAnswer:
    """The `top_k` best answers to (entity, relation, ?) when `target` is "tail", or (?, relation, entity).

    `exclude_self` None decides per relation: the query entity is dropped unless train has self-loops
    for the relation. Ties are broken by entity id (a stable sort) so repeated queries print the same list.
    """
    _check_target(target)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise PredictionError(f"top_k must be a positive integer, got {top_k!r}")
    if model.num_entities != graph.num_entities:
        raise PredictionError(f"the model has {model.num_entities} entities but the graph has {graph.num_entities}")
    scores = _score_all(model, entity_id, relation_id, target)  # (N,)
    known = known_answers(graph, entity_id, relation_id, target)
    keep = torch.ones(graph.num_entities, dtype=torch.bool)  # (N,)
    if filter_known and known:
        keep[torch.tensor(sorted(known), dtype=torch.long)] = False
    if exclude_self is None:
        exclude_self = not relation_has_self_loops(graph, relation_id)
    if exclude_self:
        keep[entity_id] = False
    candidate_ids = torch.nonzero(keep).squeeze(1)  # (C,)
    order = torch.sort(scores[candidate_ids], descending=True, stable=True).indices[:top_k]
    candidates = tuple(
        Candidate(
            rank=rank,
            entity_id=answer_id,
            name=graph.entity_names[answer_id],
            text=graph.entity_texts[answer_id],
            score=float(scores[answer_id]),
            known_in=known.get(answer_id),
            is_query_entity=answer_id == entity_id,
        )
        for rank, answer_id in enumerate(candidate_ids[order].tolist(), start=1)
    )
    return QueryAnswer(
        dataset=graph.name,
        target=target,
        entity=graph.entity_names[entity_id],
        relation=graph.relation_names[relation_id],
        candidates=candidates,
        num_known=len(known),
        filtered=filter_known,
        self_excluded=exclude_self,
    )


def _score_all(model: KGCModel, entity_id: int, relation_id: int, target: str) -> torch.Tensor:
    """(N,) float scores of every entity as the missing side, on the CPU."""
    entity = torch.tensor([entity_id], dtype=torch.long, device=model.device)
    relation = torch.tensor([relation_id], dtype=torch.long, device=model.device)
    with torch.no_grad():
        if target == "tail":
            scores = model.score_tails(entity, relation)  # (1, N)
        else:
            scores = model.score_heads(relation, entity)  # (1, N)
    return scores[0].float().cpu()


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise PredictionError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")


# --------------------------------------------------------------------------------------------------
# Output


def candidate_mark(candidate: Candidate) -> str:
    """Why a row deserves a second look: a known triple (only visible unfiltered) or a self-loop."""
    marks = [f"known:{candidate.known_in}"] if candidate.known_in else []
    if candidate.is_query_entity:
        marks.append("self")
    return ",".join(marks)


def answer_to_json(answer: QueryAnswer) -> list[dict[str, Any]]:
    """One record per row; `rank`, `entity` and `score` are the contract, `id` and `mark` are extras."""
    return [
        {
            "rank": candidate.rank,
            "entity": candidate.name,
            "score": candidate.score,
            "id": candidate.entity_id,
            "mark": candidate_mark(candidate) or None,
        }
        for candidate in answer.candidates
    ]


def format_answer(answer: QueryAnswer) -> str:
    """A plain-text table; the description column appears only when some entity text adds to its name."""
    query = (
        f"({answer.entity}, {answer.relation}, ?)" if answer.target == "tail"
        else f"(?, {answer.relation}, {answer.entity})"
    )
    noun = answer.target if answer.num_known == 1 else f"{answer.target}s"
    if answer.filtered:
        known_line = f"({answer.num_known} known {noun} filtered)"
    else:
        known_line = f"({answer.num_known} known {noun} not filtered; marked known:<split>)"
    if answer.self_excluded:
        known_line += f"; {answer.entity} itself left out"
    lines = [f"{answer.dataset}: {query}, top {len(answer.candidates)} {answer.target}s", known_line]
    if not answer.candidates:
        lines.append("no candidates left")
        return "\n".join(lines) + "\n"
    descriptions = [_short_description(c.name, c.text) for c in answer.candidates]
    scores = _format_scores([c.score for c in answer.candidates])
    header = ["rank", "entity"] + (["description"] if any(descriptions) else []) + ["score", "mark"]
    rows = [
        [str(c.rank), c.name] + ([description] if any(descriptions) else []) + [score, candidate_mark(c)]
        for c, description, score in zip(answer.candidates, descriptions, scores)
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    numeric = {0, len(header) - 2}  # rank and score are right-aligned
    for row in [header, *rows]:
        cells = [cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _format_scores(scores: Sequence[float]) -> list[str]:
    """One format per column so decimals line up; scientific only when every score is tiny (early DistMult)."""
    tiny = max(abs(score) for score in scores) < 0.01
    return [f"{score:.4e}" if tiny else f"{score:.4f}" for score in scores]


def _short_description(name: str, text: str) -> str:
    """The entity text when it says more than the name (MKG-Y's texts are just the cleaned names), truncated."""
    if not text or text in (name, clean_entity_name(name)):
        return ""
    return text if len(text) <= DESCRIPTION_WIDTH else text[: DESCRIPTION_WIDTH - 3].rstrip() + "..."
