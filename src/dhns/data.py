"""Benchmark input: read and validate OpenKE-format knowledge graphs, report split hygiene, store them as parquet.

Everything downstream (features, negative sampling, filtered evaluation) trusts the ids in a
`KnowledgeGraph`, so the reader refuses any file it cannot fully account for and says exactly which
file and line is wrong. Triples are kept in (head, relation, tail) column order everywhere in `dhns`;
OpenKE's on-disk order (head, tail, relation) is translated once, here.

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

import dataclasses
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from dhns.io import atomic_directory, read_json, stage_hint, write_json

SPLITS: tuple[str, ...] = ("train", "valid", "test")
ENTITY_ID_FILE = "entity2id.txt"
RELATION_ID_FILE = "relation2id.txt"
ENTITY_TEXT_FILE = "entity2text.tsv"
RELATION_TEXT_FILE = "relation2text.tsv"
DATASET_FILE = "dataset.json"

_INTEGER = re.compile(r"-?[0-9]+")
_COUNT = re.compile(r"[0-9]+")
# Anything in a triple file that cannot belong to a decimal id sends parsing to the line-by-line scan.
_NOT_TRIPLE_TEXT = re.compile(r"[^0-9\s-]")
_WIKIDATA_ID = re.compile(r"[QP][0-9]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# A carriage return that neither ends a CRLF pair nor the file: the line ending of old Mac files.
_LONE_CR = re.compile(r"\r(?!\n|\Z)")
# Longest piece of a line an error message quotes: a file with the wrong line endings is one giant line.
_QUOTE_LIMIT = 100


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


# --------------------------------------------------------------------------------------------------
# Reading OpenKE files


def read_openke_benchmark(raw_dir: Path) -> KnowledgeGraph:
    """Read and fully validate one OpenKE benchmark folder; any defect raises `DataFormatError`.

    The graph is named after the folder. Texts come from `entity2text.tsv` / `relation2text.tsv` when
    present, else from the cleaned names.
    """
    raw_dir = Path(raw_dir)
    entity_names = _read_id_file(raw_dir / ENTITY_ID_FILE)
    relation_names = _read_id_file(raw_dir / RELATION_ID_FILE)
    splits = {
        split: _read_triple_file(raw_dir / f"{split}2id.txt", len(entity_names), len(relation_names))
        for split in SPLITS
    }
    entity_texts = _read_texts_or_clean(raw_dir / ENTITY_TEXT_FILE, entity_names, ENTITY_ID_FILE, clean_entity_name)
    relation_texts = _read_texts_or_clean(
        raw_dir / RELATION_TEXT_FILE, relation_names, RELATION_ID_FILE, clean_relation_name
    )
    return KnowledgeGraph(
        name=raw_dir.name,
        entity_names=entity_names,
        entity_texts=entity_texts,
        relation_names=relation_names,
        relation_texts=relation_texts,
        **splits,
    )


def _read_text(path: Path) -> str:
    """Decode as UTF-8 (a BOM is tolerated); report an undecodable byte by its line."""
    if not path.is_file():
        raise DataFormatError(f"{path}: required file is missing")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataFormatError(f"{path}, line {line}: not valid UTF-8 ({error.reason} at byte {error.start})") from None
    _check_line_endings(path, text)
    return text


def _check_line_endings(path: Path, text: str) -> None:
    """Refuse lone-CR line endings by name: split on \\n, such a file is one giant line, and every later
    check would report that line as some other, baffling problem. CRLF (and a final lone CR) stays accepted."""
    if "\r" not in text:
        return
    lone = _LONE_CR.search(text)
    if lone is not None:
        line = text.count("\n", 0, lone.start()) + 1
        raise DataFormatError(
            f"{path}, line {line}: lines end in a lone carriage return (\\r), as old Mac files do; "
            f"convert to \\n (e.g. `tr '\\r' '\\n'`)"
        )


def _quote(text: str) -> str:
    """`text` for an error message: repr'd, and cut to an excerpt with its length when it is long,
    so that a malformed multi-megabyte line does not end up in the message (and the log) whole."""
    if len(text) <= _QUOTE_LIMIT:
        return repr(text)
    return f"{text[:_QUOTE_LIMIT]!r}... ({len(text)} characters)"


def _split_lines(text: str) -> list[str]:
    """Lines without their terminators; trailing blank lines are dropped, inner ones kept for the checks."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _parse_count(path: Path, lines: Sequence[str]) -> int:
    if not lines:
        raise DataFormatError(f"{path}, line 1: file is empty, expected a count header")
    header = lines[0].strip()
    if not _COUNT.fullmatch(header):
        raise DataFormatError(f"{path}, line 1: count header must be a non-negative integer, found {_quote(lines[0])}")
    return int(header)


def _check_count(path: Path, count: int, found: int) -> None:
    if count != found:
        raise DataFormatError(
            f"{path}, line 1: count header says {count} lines follow, but found {found} non-empty lines "
            f"(truncated or padded file?)"
        )


def _blank_line_error(path: Path, line_number: int) -> DataFormatError:
    return DataFormatError(f"{path}, line {line_number}: blank line inside the file (only trailing ones are allowed)")


def _read_id_file(path: Path) -> tuple[str, ...]:
    """Names indexed by id; ids must be unique integers covering exactly 0..count-1."""
    lines = _split_lines(_read_text(path))
    count = _parse_count(path, lines)
    name_by_id: dict[int, str] = {}
    line_of_id: dict[int, int] = {}
    line_of_name: dict[str, int] = {}
    for line_number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise _blank_line_error(path, line_number)
        fields = line.strip().rsplit(None, 1)
        if len(fields) != 2:
            raise DataFormatError(f"{path}, line {line_number}: expected 'name id', found 1 field: {_quote(line)}")
        name, id_text = fields
        if not _INTEGER.fullmatch(id_text):
            raise DataFormatError(
                f"{path}, line {line_number}: id must be an integer, found {_quote(id_text)} in {_quote(line)}"
            )
        if not _fits_int64(id_text):
            raise DataFormatError(f"{path}, line {line_number}: id does not fit in 64 bits: {_quote(id_text)}")
        item_id = int(id_text)
        if item_id in line_of_id:
            raise DataFormatError(
                f"{path}, line {line_number}: duplicate id {item_id} (already used on line {line_of_id[item_id]})"
            )
        if name in line_of_name:
            raise DataFormatError(
                f"{path}, line {line_number}: duplicate name {_quote(name)} (already on line {line_of_name[name]})"
            )
        name_by_id[item_id], line_of_id[item_id], line_of_name[name] = name, line_number, line_number
    _check_count(path, count, len(lines) - 1)
    if count == 0:
        raise DataFormatError(f"{path}, line 1: no ids listed (count 0)")
    for item_id, line_number in sorted(line_of_id.items(), key=lambda item: item[1]):
        if not 0 <= item_id < count:
            raise DataFormatError(
                f"{path}, line {line_number}: id {item_id} is outside [0, {count}); ids must cover 0..{count - 1}"
            )
    # count lines, unique ids, all in [0, count): they are exactly 0..count-1.
    return tuple(name_by_id[item_id] for item_id in range(count))


def _read_triple_file(path: Path, num_entities: int, num_relations: int) -> torch.Tensor:
    """(n, 3) int64 (head, relation, tail) from an OpenKE `head tail relation` file."""
    lines = _split_lines(_read_text(path))
    count = _parse_count(path, lines)
    body = lines[1:]
    rows = _parse_triples_fast(body)
    if rows is None:
        _raise_first_bad_triple_line(path, body)
        raise DataFormatError(f"{path}: could not parse the triples (no single bad line found)")
    _check_count(path, count, len(body))
    if count == 0:
        raise DataFormatError(f"{path}, line 1: the split is empty (count 0, no triples); every split needs triples")
    _check_triple_ids(path, rows, body, num_entities, num_relations)
    return torch.from_numpy(np.ascontiguousarray(rows[:, [0, 2, 1]]))


def _parse_triples_fast(body: list[str]) -> np.ndarray | None:
    """Whole-file parse in C-level loops; None means "something is off, scan line by line"."""
    if not body:
        return np.zeros((0, 3), dtype=np.int64)
    text = "\n".join(body)
    if _NOT_TRIPLE_TEXT.search(text):
        return None
    fields_per_line = np.fromiter(map(len, map(str.split, body)), dtype=np.int64, count=len(body))
    if not (fields_per_line == 3).all():
        return None
    try:
        return np.array(text.split(), dtype=np.int64).reshape(-1, 3)
    except (ValueError, OverflowError):
        return None


def _raise_first_bad_triple_line(path: Path, body: list[str]) -> None:
    """The slow path: find and report the first line the fast parse choked on."""
    for line_number, line in enumerate(body, start=2):
        if not line.strip():
            raise _blank_line_error(path, line_number)
        fields = line.split()
        if len(fields) != 3 or not all(_INTEGER.fullmatch(field) for field in fields):
            raise DataFormatError(
                f"{path}, line {line_number}: expected 3 integer fields 'head tail relation', "
                f"found {len(fields)}: {_quote(line)}"
            )
        if not all(map(_fits_int64, fields)):
            raise DataFormatError(f"{path}, line {line_number}: id does not fit in 64 bits: {_quote(line)}")


def _fits_int64(field: str) -> bool:
    """Whether a decimal integer fits in int64; the length check comes first because `int()` refuses
    strings of over 4300 digits with a ValueError that names neither file nor line."""
    return len(field.lstrip("-")) <= 19 and _INT64_MIN <= int(field) <= _INT64_MAX


def _check_triple_ids(
    path: Path, rows: np.ndarray, body: list[str], num_entities: int, num_relations: int
) -> None:
    """Report the earliest line holding an id outside its vocabulary, naming the field and the range."""
    checks = (("head", 0, num_entities, ENTITY_ID_FILE), ("tail", 1, num_entities, ENTITY_ID_FILE),
              ("relation", 2, num_relations, RELATION_ID_FILE))
    first: tuple[int, str, int, int, str] | None = None
    for field, column, limit, vocabulary in checks:
        bad = np.flatnonzero((rows[:, column] < 0) | (rows[:, column] >= limit))
        if bad.size and (first is None or bad[0] < first[0]):
            first = (int(bad[0]), field, column, limit, vocabulary)
    if first is not None:
        row, field, column, limit, vocabulary = first
        raise DataFormatError(
            f"{path}, line {row + 2}: {field} id {rows[row, column]} is outside [0, {limit}) "
            f"({vocabulary} lists {limit}): {_quote(body[row])}"
        )


def _read_texts_or_clean(
    path: Path, names: tuple[str, ...], id_file: str, clean: Callable[[str], str]
) -> tuple[str, ...]:
    """The curated text file wins; cleaned names are the fallback for benchmarks that ship none."""
    if path.exists():
        return _read_text_file(path, names, id_file)
    return tuple(clean(name) for name in names)


def _read_text_file(path: Path, names: tuple[str, ...], id_file: str) -> tuple[str, ...]:
    """`name<TAB>text` lines, exactly one per name of the id file; the text is kept verbatim."""
    index = {name: item_id for item_id, name in enumerate(names)}
    texts: list[str | None] = [None] * len(names)
    line_of: list[int] = [0] * len(names)
    for line_number, line in enumerate(_split_lines(_read_text(path)), start=1):
        if not line.strip():
            raise _blank_line_error(path, line_number)
        columns = line.split("\t")
        if len(columns) != 2:
            raise DataFormatError(
                f"{path}, line {line_number}: expected 2 tab-separated columns 'name<TAB>text', "
                f"found {len(columns)}: {_quote(line)}"
            )
        name, text = columns
        item_id = index.get(name)
        if item_id is None:
            raise DataFormatError(f"{path}, line {line_number}: unknown name {_quote(name)} (not in {id_file})")
        if line_of[item_id]:
            raise DataFormatError(
                f"{path}, line {line_number}: second line for {_quote(name)} (first on line {line_of[item_id]})"
            )
        texts[item_id], line_of[item_id] = text, line_number
    missing = [item_id for item_id, text in enumerate(texts) if text is None]
    if missing:
        first = missing[0]
        raise DataFormatError(
            f"{path}: no line for {len(missing)} of {len(names)} names in {id_file}; "
            f"first missing: {_quote(names[first])} (id {first})"
        )
    return tuple(text for text in texts if text is not None)


# --------------------------------------------------------------------------------------------------
# Split hygiene


def _triple_keys(kg: KnowledgeGraph) -> list[np.ndarray]:
    """One int64 key per triple (h*R*E + r*E + t), so set operations become np.unique / np.isin.

    Vocabularies too large for that key fall back to dense keys from a joint row-wise unique.
    """
    arrays = [getattr(kg, split).detach().cpu().numpy() for split in SPLITS]
    entities, relations = kg.num_entities, kg.num_relations
    if entities * relations * entities <= _INT64_MAX:
        return [(rows[:, 0] * relations + rows[:, 1]) * entities + rows[:, 2] for rows in arrays]
    _, inverse = np.unique(np.concatenate(arrays), axis=0, return_inverse=True)
    return np.split(inverse.reshape(-1).astype(np.int64), np.cumsum([len(rows) for rows in arrays])[:-1])


def split_report(kg: KnowledgeGraph) -> dict[str, Any]:
    """JSON-ready counts of what makes link-prediction numbers untrustworthy: leaks, duplicates, unseen ids."""
    keys = dict(zip(SPLITS, _triple_keys(kg)))
    distinct = {split: np.unique(key) for split, key in keys.items()}
    train = kg.train.detach().cpu().numpy()
    seen_entities = np.zeros(kg.num_entities, dtype=bool)
    seen_entities[train[:, 0]] = True
    seen_entities[train[:, 2]] = True
    seen_relations = np.zeros(kg.num_relations, dtype=bool)
    seen_relations[train[:, 1]] = True
    report: dict[str, Any] = {
        "name": kg.name,
        "num_entities": kg.num_entities,
        "num_relations": kg.num_relations,
        "num_entities_unseen_in_train": int((~seen_entities).sum()),
        "num_relations_unseen_in_train": int((~seen_relations).sum()),
    }
    for split in SPLITS:
        rows = getattr(kg, split).detach().cpu().numpy()
        unseen = ~seen_entities[rows[:, 0]] | ~seen_entities[rows[:, 2]] | ~seen_relations[rows[:, 1]]
        report[split] = {
            "num_triples": int(len(rows)),
            "num_distinct": int(len(distinct[split])),
            "num_duplicates": int(len(rows) - len(distinct[split])),
            "num_self_loops": int((rows[:, 0] == rows[:, 2]).sum()),
            "num_with_id_unseen_in_train": int(unseen.sum()),
        }
    report["valid_in_train"] = int(np.isin(distinct["valid"], distinct["train"]).sum())
    report["test_in_train"] = int(np.isin(distinct["test"], distinct["train"]).sum())
    report["valid_in_test"] = int(np.isin(distinct["valid"], distinct["test"]).sum())
    return report


def drop_leaked_triples(kg: KnowledgeGraph) -> tuple[KnowledgeGraph, dict[str, Any]]:
    """Make valid and test disjoint from train and from each other, keeping test as large as possible.

    Policy: train is untouched. Test loses its in-split duplicates and triples also in train. Valid
    loses its duplicates, triples in train, and triples in (cleaned) test: a triple in both valid and
    test is kept in test, so the reported test metric covers the most triples. Kept rows stay in file
    order (first occurrence). Per split the counts satisfy
    before = duplicates + in_train (+ in_test for valid) + after; distinct-triple removals are counted
    once, by the first reason in that order.
    """
    train_keys, valid_keys, test_keys = _triple_keys(kg)
    test_rows, test_counts = _keep_rows(test_keys, [("in_train", train_keys)])
    valid_rows, valid_counts = _keep_rows(valid_keys, [("in_train", train_keys), ("in_test", test_keys[test_rows])])
    cleaned = dataclasses.replace(
        kg, valid=kg.valid[torch.from_numpy(valid_rows)], test=kg.test[torch.from_numpy(test_rows)]
    )
    dropped = {
        "policy": "train untouched; test minus duplicates and train; valid minus duplicates, train and test",
        "train": {"before": len(train_keys), "after": len(train_keys)},
        "valid": valid_counts,
        "test": test_counts,
    }
    return cleaned, dropped


def _keep_rows(keys: np.ndarray, exclusions: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, dict[str, int]]:
    """Row indices of first occurrences not found in any exclusion set, with the reason counts."""
    _, first = np.unique(keys, return_index=True)
    kept = np.sort(first).astype(np.int64)
    counts = {"before": int(len(keys)), "duplicates": int(len(keys) - len(kept))}
    for reason, other in exclusions:
        hit = np.isin(keys[kept], other)
        counts[reason] = int(hit.sum())
        kept = kept[~hit]
    counts["after"] = int(len(kept))
    return kept, counts


def hold_out_validation(kg: KnowledgeGraph, n: int, seed: int) -> tuple[KnowledgeGraph, dict[str, Any]]:
    """Replace the file's validation split by a seeded sample of `n` train triples (`data.valid_from_train`).

    `n == 0` returns `kg` unchanged. Otherwise distinct train triples (all copies of one together, and
    never one that is also a test triple) are drawn in a random order fixed by `seed`; a draw is kept
    only if every entity and the relation of the triple still occur in the train triples left, so no
    id loses its last train occurrence. The draw stops at `n` kept triples; if the constraint allows
    fewer, all that the single pass could keep are held out (a maximal set: each skipped triple would
    take away a last occurrence) and the report's `shortfall` says how many are missing. If none can
    be held out a ValueError is raised: an empty validation split could not select a model.

    The new valid split is the held-out triples in draw order, followed by the file's valid triples
    that are known nowhere else (not in the remaining train, test or held-out triples; duplicates
    dropped): those are never trained on, and keeping them in `valid` keeps them in `all_triples()`,
    hence filtered as known true triples, without another split in the prepared format. Test is untouched.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"valid_from_train must be an integer >= 0, got {n!r}")
    if n == 0:
        return kg, {"source": "valid_file", "requested": 0, "num_triples": len(kg.valid),
                    "file_valid_triples": len(kg.valid)}
    train_keys, valid_keys, test_keys = _triple_keys(kg)
    train = kg.train.detach().cpu().numpy()
    distinct, first, inverse, copies = np.unique(train_keys, return_index=True, return_inverse=True,
                                                 return_counts=True)
    candidates = np.flatnonzero(~np.isin(distinct, test_keys))
    order = np.random.default_rng(seed % 2**64).permutation(candidates)
    entity_count = (np.bincount(train[:, 0], minlength=kg.num_entities)
                    + np.bincount(train[:, 2], minlength=kg.num_entities)).tolist()
    relation_count = np.bincount(train[:, 1], minlength=kg.num_relations).tolist()
    rows, multiplicity = train[first].tolist(), copies.tolist()
    chosen: list[int] = []
    for index in order.tolist():
        if len(chosen) == n:
            break
        (head, relation, tail), m = rows[index], multiplicity[index]
        entity_count[head] -= m
        entity_count[tail] -= m  # a self-loop takes two occurrences of its entity
        relation_count[relation] -= m
        if entity_count[head] > 0 and entity_count[tail] > 0 and relation_count[relation] > 0:
            chosen.append(index)
        else:
            entity_count[head] += m
            entity_count[tail] += m
            relation_count[relation] += m
    if not chosen:
        raise ValueError(
            f"valid_from_train={n}: no train triple of {kg.name} can be held out without taking away the last "
            f"train occurrence of an entity or relation (or every train triple is also a test triple)"
        )
    chosen_array = np.asarray(chosen, dtype=np.int64)
    held_out_rows = first[chosen_array].astype(np.int64)
    in_held_out = np.isin(inverse.reshape(-1), chosen_array)
    file_rows, file_counts = _keep_rows(
        valid_keys,
        [("in_train", train_keys[~in_held_out]), ("in_test", test_keys), ("in_held_out", distinct[chosen_array])],
    )
    valid = torch.cat([kg.train[torch.from_numpy(held_out_rows)], kg.valid[torch.from_numpy(file_rows)]])
    held_out = dataclasses.replace(kg, train=kg.train[torch.from_numpy(~in_held_out)], valid=valid)
    report = {
        "source": "valid_from_train",
        "requested": n,
        "seed": seed,
        "num_triples": len(valid),
        "held_out": len(chosen),
        "shortfall": n - len(chosen),
        "file_valid_triples": len(kg.valid),
        "file_valid_kept": int(len(file_rows)),
        "file_valid": file_counts,
        "train": {"before": len(kg.train), "after": len(held_out.train)},
        "policy": "held-out train sample (every entity and relation kept in train) + file valid triples known "
                  "nowhere else; file valid never trained on; test untouched",
    }
    return held_out, report


# --------------------------------------------------------------------------------------------------
# Prepared (parquet) form

_VOCAB_SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("text", pa.string())])
_TRIPLE_SCHEMA = pa.schema([("head", pa.int64()), ("relation", pa.int64()), ("tail", pa.int64())])


def write_prepared(kg: KnowledgeGraph, out_dir: Path) -> None:
    """Write the graph as parquet + dataset.json; all or nothing, so a failed run never leaves half a dataset.

    An empty split is refused before anything is written: the raw files cannot hold one (the reader
    rejects it), but dropping leaked triples can empty valid or test, and later stages could then neither
    select nor evaluate a model.
    """
    empty = [split for split in SPLITS if len(getattr(kg, split)) == 0]
    if empty:
        raise DataFormatError(
            f"{out_dir}: not written, the {empty[0]} split of {kg.name} has no triples left "
            f"(train {len(kg.train)}, valid {len(kg.valid)}, test {len(kg.test)}); every split needs triples. "
            f"If data.drop_leaked removed them all, the benchmark's splits overlap completely."
        )
    with atomic_directory(Path(out_dir)) as staging:
        _write_vocabulary(staging / "entities.parquet", kg.entity_names, kg.entity_texts)
        _write_vocabulary(staging / "relations.parquet", kg.relation_names, kg.relation_texts)
        for split in SPLITS:
            rows = getattr(kg, split).detach().cpu().numpy()
            table = pa.table([pa.array(rows[:, column], pa.int64()) for column in range(3)], schema=_TRIPLE_SCHEMA)
            pq.write_table(table, staging / f"{split}.parquet")
        write_json(
            staging / DATASET_FILE,
            {"name": kg.name, "num_entities": kg.num_entities, "num_relations": kg.num_relations},
        )


def _write_vocabulary(path: Path, names: tuple[str, ...], texts: tuple[str, ...]) -> None:
    ids = pa.array(np.arange(len(names), dtype=np.int64))
    table = pa.table([ids, pa.array(names, pa.string()), pa.array(texts, pa.string())], schema=_VOCAB_SCHEMA)
    pq.write_table(table, path)


def load_prepared(out_dir: Path) -> KnowledgeGraph:
    """Inverse of `write_prepared`; checks schema and id coverage so a stale or foreign folder fails loudly."""
    out_dir = Path(out_dir)
    meta_path = out_dir / DATASET_FILE
    if not meta_path.is_file():
        raise DataFormatError(f"{meta_path}: required file is missing; {stage_hint('prepare')}")
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or not {"name", "num_entities", "num_relations"} <= meta.keys():
        raise DataFormatError(f"{meta_path}: expected keys 'name', 'num_entities', 'num_relations'")
    entity_names, entity_texts = _read_vocabulary(out_dir / "entities.parquet", meta["num_entities"])
    relation_names, relation_texts = _read_vocabulary(out_dir / "relations.parquet", meta["num_relations"])
    splits = {
        split: _read_triple_table(out_dir / f"{split}.parquet", len(entity_names), len(relation_names))
        for split in SPLITS
    }
    return KnowledgeGraph(
        name=str(meta["name"]),
        entity_names=entity_names,
        entity_texts=entity_texts,
        relation_names=relation_names,
        relation_texts=relation_texts,
        **splits,
    )


def _read_table(path: Path, schema: pa.Schema) -> pa.Table:
    if not path.is_file():
        raise DataFormatError(f"{path}: required file is missing; {stage_hint('prepare')}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise DataFormatError(f"{path}: not a readable parquet file ({error}); {stage_hint('prepare')}") from None
    for field in schema:
        if field.name not in table.column_names:
            raise DataFormatError(f"{path}: missing column {field.name!r} (has {table.column_names})")
        column = table.column(field.name)
        if column.type != field.type:
            raise DataFormatError(f"{path}: column {field.name!r} is {column.type}, expected {field.type}")
        if column.null_count:
            raise DataFormatError(f"{path}: column {field.name!r} has {column.null_count} nulls")
    return table


def _read_vocabulary(path: Path, expected: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    table = _read_table(path, _VOCAB_SCHEMA)
    ids = table.column("id").to_numpy()
    if len(ids) != expected or not np.array_equal(ids, np.arange(expected)):
        raise DataFormatError(f"{path}: ids must be 0..{expected - 1} in order ({len(ids)} rows found)")
    return tuple(table.column("name").to_pylist()), tuple(table.column("text").to_pylist())


def _read_triple_table(path: Path, num_entities: int, num_relations: int) -> torch.Tensor:
    """(n, 3) int64 (head, relation, tail); an empty split or an id outside the vocabularies is refused."""
    table = _read_table(path, _TRIPLE_SCHEMA)
    if table.num_rows == 0:
        raise DataFormatError(f"{path}: the split is empty (0 triples); every split needs triples")
    rows = np.stack([table.column(field.name).to_numpy() for field in _TRIPLE_SCHEMA], axis=1)
    rows = np.ascontiguousarray(rows.reshape(-1, 3), dtype=np.int64)  # (n, 3)
    limits = np.array([num_entities, num_relations, num_entities])
    bad_cells = (rows < 0) | (rows >= limits)  # (n, 3)
    bad = np.flatnonzero(bad_cells.any(axis=1))
    if bad.size:
        row = int(bad[0])
        column = int(np.argmax(bad_cells[row]))
        field = _TRIPLE_SCHEMA.names[column]
        raise DataFormatError(
            f"{path}, row {row}: {field} id {rows[row, column]} is outside [0, {limits[column]}) "
            f"in (head, relation, tail) = {rows[row].tolist()}; {int(bad.size)} rows are out of range"
        )
    return torch.from_numpy(rows)
