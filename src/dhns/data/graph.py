"""The in-memory knowledge graph, its id checks, and readable text for names that have no label.

Everything downstream (features, negative sampling, filtered evaluation) trusts the ids in a
`KnowledgeGraph`, so it checks dtype, shape and id range at construction. Triples are kept in
(head, relation, tail) column order everywhere in `dhns`.

Text fallbacks (used when no `entity2text.tsv` / `relation2text.tsv` exists):
- entities: `clean_entity_name` turns a URI or underscore name into words and keeps the casing, since
  entity names are proper nouns ("McDonald's", "iPhone") that camelCase splitting would mangle;
- relations: `clean_relation_name` additionally splits camelCase predicates into lower-case words
  (`wasBornIn` -> `was born in`, `rdf-schema#seeAlso` -> `see also`), because predicate names are
  identifiers, not prose, and a text encoder reads the words far better than the identifier.
A bare Wikidata id (`Q42`, `P161`, or its `http://www.wikidata.org/entity/...` URI) carries no text and
becomes "" (callers treat "" as "no text").
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

import torch

SPLITS: tuple[str, ...] = ("train", "valid", "test")
_WIKIDATA_ID = re.compile(r"[QP][0-9]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# Ids are int64 everywhere (tensors, parquet); the OpenKE reader and the split-hygiene keys check against this range.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class DataFormatError(ValueError):
    """An input file does not match the expected format; the message names the file, line and problem."""


# --------------------------------------------------------------------------------------------------
# The in-memory graph


@dataclass(frozen=True, eq=False)
class KnowledgeGraph:
    """One benchmark, with ids already validated.

    `eq=False` because the dataclass-generated `==` would compare tensors element-wise and then fail
    on `bool(tensor)`; compare fields explicitly instead. `relation_texts` comes last with a default so
    that positional construction with the original seven fields keeps working; when omitted it is
    filled from the cleaned relation names.
    """

    name: str
    entity_names: tuple[str, ...]
    entity_texts: tuple[str, ...]
    relation_names: tuple[str, ...]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    relation_texts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in ("entity_names", "entity_texts", "relation_names", "relation_texts"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        if not self.relation_texts and self.relation_names:
            object.__setattr__(self, "relation_texts", tuple(map(clean_relation_name, self.relation_names)))
        if len(self.entity_texts) != len(self.entity_names):
            raise ValueError(f"{len(self.entity_texts)} entity texts for {len(self.entity_names)} entities")
        if len(self.relation_texts) != len(self.relation_names):
            raise ValueError(f"{len(self.relation_texts)} relation texts for {len(self.relation_names)} relations")
        for split in SPLITS:
            _check_triple_tensor(split, getattr(self, split), self.num_entities, self.num_relations)

    @property
    def num_entities(self) -> int:
        return len(self.entity_names)

    @property
    def num_relations(self) -> int:
        return len(self.relation_names)

    def all_triples(self) -> torch.Tensor:
        """Every known true triple, as filtered ranking needs to exclude them all."""
        return torch.cat([self.train, self.valid, self.test], dim=0)


def _check_triple_tensor(split: str, triples: Any, num_entities: int, num_relations: int) -> None:
    """Catch wrong dtype, shape or id range at construction, where the cause is still obvious."""
    if not isinstance(triples, torch.Tensor):
        raise TypeError(f"{split}: expected a torch.Tensor, got {type(triples).__name__}")
    if triples.dtype != torch.int64 or triples.dim() != 2 or triples.shape[1] != 3:
        raise ValueError(
            f"{split}: expected an int64 tensor of shape (n, 3), got {triples.dtype} {tuple(triples.shape)}"
        )
    if triples.shape[0] == 0:
        return
    low, high = triples.min(dim=0).values.tolist(), triples.max(dim=0).values.tolist()
    limits = (num_entities, num_relations, num_entities)
    for column, name, limit in zip(range(3), ("head", "relation", "tail"), limits):
        if low[column] < 0 or high[column] >= limit:
            raise ValueError(f"{split}: {name} ids span [{low[column]}, {high[column]}], outside [0, {limit})")


# --------------------------------------------------------------------------------------------------
# Text cleaning


def clean_entity_name(name: str) -> str:
    """Readable text for an entity that has no label: the text modality must not see URI syntax."""
    segment = _name_segment(name)
    if _WIKIDATA_ID.fullmatch(segment):
        return ""
    return " ".join(urllib.parse.unquote(segment).replace("_", " ").split())


def clean_relation_name(name: str) -> str:
    """Like `clean_entity_name`, plus camelCase split into lower-case words (acronyms keep their case)."""
    text = clean_entity_name(name)
    words = _CAMEL_BOUNDARY.sub(" ", text).split()
    return " ".join(word if word.isupper() and len(word) > 1 else word.lower() for word in words)


def _name_segment(name: str) -> str:
    """The meaningful tail of a name: the last path segment or fragment of a URI, else the name itself.

    Only URIs are cut at '/': plain YAGO names such as `AC/DC` contain slashes that are part of the name.
    Cutting happens before percent-decoding, so an encoded `%2F` stays inside the segment.
    """
    text = name.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if "://" in text:
        text = re.split(r"[/#]", text.rstrip("/#"))[-1]
    return text
