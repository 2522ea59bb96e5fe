"""The prepared form of a graph: parquet tables plus `dataset.json`, written all or nothing and read back checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from dhns.data.graph import SPLITS, DataFormatError, KnowledgeGraph
from dhns.io import atomic_directory, read_json, stage_hint, write_json

DATASET_FILE = "dataset.json"
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
