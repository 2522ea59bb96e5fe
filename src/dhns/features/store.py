"""On-disk format of one modality's per-entity feature table.

One parquet file per modality keeps feature extraction (slow, needs encoders) separate from
training (fast, needs only tensors), and lets DVC cache each modality on its own. The layout is
columnar so a reader turns it into one tensor through numpy buffers, without touching rows in Python:

* ``id``      int64, must be exactly ``0..n-1`` in order (row i is entity id i, so no join is needed);
* ``present`` bool, False where the entity has no data for this modality (its vector is all zeros);
* ``vector``  fixed_size_list<float32>[dim], one embedding per entity.

What produced the table (encoder name, imported file), which weights the encoder ran with, and how
many input files were skipped as unreadable travel in the schema's key-value metadata, so a table can be
traced without a side file. Tables written before weights were recorded read back with ``weights == ""``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from dhns.io import atomic_file

SOURCE_KEY = b"dhns.source"
WEIGHTS_KEY = b"dhns.weights"
UNREADABLE_KEY = b"dhns.num_unreadable_files"
FORMAT_KEY = b"dhns.feature_format"
FORMAT_VERSION = b"1"


@dataclass(frozen=True)
class FeatureTable:
    """Per-entity embeddings of one modality, with a mask of which entities actually have it.

    The invariants are checked here, once, so that every consumer (writer, model, importer) can rely on
    them instead of re-checking: absent rows are exactly zero, so a model that forgets the mask still
    sees a neutral vector rather than garbage.
    """

    vectors: torch.Tensor  # (num_entities, dim) float32, row i = entity id i
    present: torch.Tensor  # (num_entities,) bool, False = entity lacks this modality (row is zeros)
    source: str  # what produced it: the encoder ("open_clip:ViT-B-32", "transformers:minilm") or "import:<file>"
    num_unreadable_files: int = 0  # input files (e.g. broken images) skipped while building it
    # which weights the encoder ran with: pretrained tag, weights file or folder, model id, the imported file,
    # or "random (...)" when random weights were asked for; "" = not recorded (tables from before it was)
    weights: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.vectors, torch.Tensor):
            raise ValueError(f"FeatureTable.vectors must be a torch.Tensor, got {type(self.vectors).__name__}")
        if not isinstance(self.present, torch.Tensor):
            raise ValueError(f"FeatureTable.present must be a torch.Tensor, got {type(self.present).__name__}")
        if not isinstance(self.source, str):
            raise ValueError(f"FeatureTable.source must be a str, got {type(self.source).__name__}")
        if not isinstance(self.weights, str):
            raise ValueError(f"FeatureTable.weights must be a str, got {type(self.weights).__name__}")
        count = self.num_unreadable_files
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"FeatureTable.num_unreadable_files must be an int >= 0, got {count!r}")
        if self.vectors.dim() != 2:
            raise ValueError(
                f"FeatureTable.vectors must be 2-D (num_entities, dim), got shape {tuple(self.vectors.shape)}"
            )
        if self.vectors.dtype != torch.float32:
            raise ValueError(f"FeatureTable.vectors must be float32, got {self.vectors.dtype}")
        if self.vectors.shape[1] < 1:
            raise ValueError("FeatureTable.vectors must have at least one column (dim >= 1)")
        if self.present.dim() != 1 or self.present.dtype != torch.bool:
            raise ValueError(
                f"FeatureTable.present must be a 1-D bool tensor, got shape {tuple(self.present.shape)} "
                f"dtype {self.present.dtype}"
            )
        if self.present.shape[0] != self.vectors.shape[0]:
            raise ValueError(
                f"FeatureTable.present has {self.present.shape[0]} entries but vectors has "
                f"{self.vectors.shape[0]} rows"
            )
        finite_rows = torch.isfinite(self.vectors).all(dim=1)  # (num_entities,)
        if not bool(finite_rows.all()):
            bad = int((~finite_rows).sum())
            first = int((~finite_rows).nonzero()[0, 0])
            raise ValueError(
                f"FeatureTable.vectors has {bad} rows with NaN or inf values (first: row {first}, entity id {first})"
            )
        absent_nonzero = (~self.present.to(self.vectors.device)) & (self.vectors != 0).any(dim=1)
        if bool(absent_nonzero.any()):
            first = int(absent_nonzero.nonzero()[0, 0])
            raise ValueError(
                f"FeatureTable has {int(absent_nonzero.sum())} rows marked not present whose vector is not "
                f"all zeros (first: entity {first})"
            )

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def num_entities(self) -> int:
        return int(self.vectors.shape[0])


def write_feature_table(path: str | Path, table: FeatureTable) -> None:
    """Write `table` as parquet, atomically so an interrupted run never leaves a truncated file for DVC."""
    vectors = table.vectors.detach().cpu().contiguous().numpy()  # (n, dim) float32
    present = table.present.detach().cpu().numpy()  # (n,) bool
    n, dim = vectors.shape
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    columns = {
        "id": pa.array(np.arange(n, dtype=np.int64), type=pa.int64()),
        "present": pa.array(present, type=pa.bool_()),
        "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
    }
    arrow_table = pa.table(columns).replace_schema_metadata(
        {
            SOURCE_KEY: table.source.encode("utf-8"),
            WEIGHTS_KEY: table.weights.encode("utf-8"),
            FORMAT_KEY: FORMAT_VERSION,
            UNREADABLE_KEY: str(table.num_unreadable_files).encode("ascii"),
        }
    )
    with atomic_file(path) as tmp:
        pq.write_table(arrow_table, tmp)


def read_feature_table(path: str | Path) -> FeatureTable:
    """Read a table written by `write_feature_table`, refusing anything that breaks its invariants.

    Features feed straight into training, where a shifted id or a NaN would silently corrupt results
    hours later; so every check fails here, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature table {path} does not exist")
    try:
        arrow_table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ValueError(f"feature table {path} is not a readable parquet file: {exc}") from exc

    missing = [name for name in ("id", "present", "vector") if name not in arrow_table.column_names]
    if missing:
        raise ValueError(
            f"feature table {path} lacks column(s) {missing}; found {arrow_table.column_names}"
        )
    ids = _read_ids(path, arrow_table.column("id"))
    present = _read_present(path, arrow_table.column("present"))
    vectors = _read_vectors(path, arrow_table.column("vector"))

    n = vectors.shape[0]  # all columns of one arrow table have the same length
    mismatch = ids != np.arange(n, dtype=np.int64)  # (n,)
    if mismatch.any():
        bad = int(np.argmax(mismatch))
        raise ValueError(
            f"feature table {path} must list ids 0..{n - 1} in order; row {bad} has id {int(ids[bad])}"
        )
    metadata = arrow_table.schema.metadata or {}
    source = metadata.get(SOURCE_KEY, b"").decode("utf-8", errors="replace")
    weights = metadata.get(WEIGHTS_KEY, b"").decode("utf-8", errors="replace")  # absent in older tables
    unreadable = metadata.get(UNREADABLE_KEY, b"0")
    if not unreadable.isdigit():
        raise ValueError(f"feature table {path}: metadata {UNREADABLE_KEY.decode()} is {unreadable!r}, expected a count")
    try:
        return FeatureTable(
            vectors=torch.from_numpy(vectors),
            present=torch.from_numpy(present),
            source=source,
            num_unreadable_files=int(unreadable),
            weights=weights,
        )
    except ValueError as exc:
        raise ValueError(f"feature table {path} is invalid: {exc}") from exc


def _read_ids(path: Path, column: pa.ChunkedArray) -> np.ndarray:
    if not pa.types.is_integer(column.type):
        raise ValueError(f"feature table {path}: column 'id' must be integer, found {column.type}")
    if column.null_count:
        raise ValueError(f"feature table {path}: column 'id' has {column.null_count} null values")
    return column.to_numpy().astype(np.int64, copy=False)  # (n,)


def _read_present(path: Path, column: pa.ChunkedArray) -> np.ndarray:
    if not pa.types.is_boolean(column.type):
        raise ValueError(f"feature table {path}: column 'present' must be bool, found {column.type}")
    if column.null_count:
        raise ValueError(f"feature table {path}: column 'present' has {column.null_count} null values")
    return np.array(column.to_numpy(), dtype=np.bool_)  # (n,), a writable copy for torch


def _read_vectors(path: Path, column: pa.ChunkedArray) -> np.ndarray:
    kind = column.type
    if not (pa.types.is_fixed_size_list(kind) and pa.types.is_float32(kind.value_type)):
        raise ValueError(
            f"feature table {path}: column 'vector' must be fixed_size_list<float32>, found {kind}"
        )
    if column.null_count:
        raise ValueError(f"feature table {path}: column 'vector' has {column.null_count} null rows")
    dim = kind.list_size
    if column.num_chunks == 0:
        return np.zeros((0, dim), dtype=np.float32)
    values = column.combine_chunks().flatten()  # (n * dim,), honours slice offsets
    if values.null_count:
        raise ValueError(f"feature table {path}: column 'vector' has {values.null_count} null elements")
    flat = values.to_numpy(zero_copy_only=False)
    return np.array(flat, dtype=np.float32).reshape(-1, dim)  # (n, dim), a writable copy for torch
