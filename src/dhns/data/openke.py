"""Reading and validating an OpenKE benchmark folder into a `KnowledgeGraph`.

The reader refuses any file it cannot fully account for and says exactly which file and line is wrong.
OpenKE's on-disk triple order (head, tail, relation) is translated to `dhns`'s (head, relation, tail)
once, here. Texts come from `entity2text.tsv` / `relation2text.tsv` when present, else from the names
cleaned as `dhns.data.graph` describes. Decoding and line splitting live in `dhns.data.text_file`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from dhns.data.graph import (
    _INT64_MAX,
    _INT64_MIN,
    SPLITS,
    DataFormatError,
    KnowledgeGraph,
    clean_entity_name,
    clean_relation_name,
)
from dhns.data.text_file import _blank_line_error, _quote, _read_text, _split_lines

ENTITY_ID_FILE = "entity2id.txt"
RELATION_ID_FILE = "relation2id.txt"
ENTITY_TEXT_FILE = "entity2text.tsv"
RELATION_TEXT_FILE = "relation2text.tsv"

_INTEGER = re.compile(r"-?[0-9]+")
_COUNT = re.compile(r"[0-9]+")
# Anything in a triple file that cannot belong to a decimal id sends parsing to the line-by-line scan.
_NOT_TRIPLE_TEXT = re.compile(r"[^0-9\s-]")
# The fields of an OpenKE triple line, in their on-disk order.
_TRIPLE_FIELDS = ("head", "tail", "relation")


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
        if len(fields) != 3:
            raise DataFormatError(
                f"{path}, line {line_number}: expected 3 integer fields 'head tail relation', "
                f"found {len(fields)}: {_quote(line)}"
            )
        for position, (field, role) in enumerate(zip(fields, _TRIPLE_FIELDS), start=1):
            problem = _id_problem(field)
            if problem:
                raise DataFormatError(f"{path}, line {line_number}: field {position} ({role}) {_quote(field)} "
                                      f"{problem}, in {_quote(line)}")


def _id_problem(field: str) -> str:
    """Why a field cannot be an id ("" when it can)."""
    if not _INTEGER.fullmatch(field):
        return "is not an integer"
    if not _fits_int64(field):
        return "does not fit in 64 bits"
    return ""


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
