from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from dhns.features.store import FeatureTable, read_feature_table, write_feature_table


def _table(num_entities: int = 5, dim: int = 3) -> FeatureTable:
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(num_entities, dim, generator=generator)  # (n, dim)
    present = torch.ones(num_entities, dtype=torch.bool)
    present[1] = False
    vectors[1] = 0.0
    return FeatureTable(vectors=vectors, present=present, source="unit-test encoder")


def test_round_trip_is_exact(tmp_path: Path) -> None:
    table = _table()
    path = tmp_path / "out" / "image.parquet"
    write_feature_table(path, table)
    back = read_feature_table(path)
    assert torch.equal(back.vectors, table.vectors)
    assert torch.equal(back.present, table.present)
    assert back.source == table.source
    assert (back.num_entities, back.dim) == (5, 3)
    assert back.vectors.dtype == torch.float32 and back.present.dtype == torch.bool
    assert [p.name for p in path.parent.iterdir()] == ["image.parquet"]  # no temp file left behind


def test_file_layout_is_the_documented_one(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    write_feature_table(path, _table(dim=4))
    arrow = pq.read_table(path)
    assert arrow.schema.field("id").type == pa.int64()
    assert arrow.schema.field("present").type == pa.bool_()
    assert arrow.schema.field("vector").type == pa.list_(pa.float32(), 4)
    assert arrow.schema.metadata[b"dhns.source"] == b"unit-test encoder"


def test_empty_table_round_trips(tmp_path: Path) -> None:
    table = FeatureTable(vectors=torch.zeros(0, 7), present=torch.zeros(0, dtype=torch.bool), source="")
    write_feature_table(tmp_path / "e.parquet", table)
    back = read_feature_table(tmp_path / "e.parquet")
    assert back.vectors.shape == (0, 7)


@pytest.mark.parametrize(
    ("vectors", "present", "problem"),
    [
        (torch.zeros(3), torch.ones(3, dtype=torch.bool), "2-D"),
        (torch.zeros(3, 2, dtype=torch.float64), torch.ones(3, dtype=torch.bool), "float32"),
        (torch.zeros(3, 2), torch.ones(4, dtype=torch.bool), "4 entries"),
        (torch.zeros(3, 2), torch.ones(3, dtype=torch.int64), "bool"),
        (torch.tensor([[1.0, float("nan")], [0.0, 0.0]]), torch.ones(2, dtype=torch.bool), "NaN"),
        (torch.ones(2, 2), torch.tensor([True, False]), "not all zeros"),
    ],
)
def test_invalid_tables_are_rejected(vectors: torch.Tensor, present: torch.Tensor, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        FeatureTable(vectors=vectors, present=present, source="x")


def test_corrupted_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "text.parquet"
    write_feature_table(path, _table())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated: footer gone
    with pytest.raises(ValueError, match=r"text\.parquet.*not a readable parquet"):
        read_feature_table(path)


def _write_raw(path: Path, ids: list[int], vectors: list[list[float]], present: list[bool]) -> None:
    dim = len(vectors[0])
    flat = pa.array([x for row in vectors for x in row], type=pa.float32())
    pq.write_table(
        pa.table(
            {
                "id": pa.array(ids, type=pa.int64()),
                "present": pa.array(present),
                "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
            }
        ),
        path,
    )


def test_ids_out_of_order_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "shuffled.parquet"
    _write_raw(path, [0, 2, 1], [[1.0], [2.0], [3.0]], [True, True, True])
    with pytest.raises(ValueError, match=r"shuffled\.parquet.*ids 0\.\.2 in order; row 1 has id 2"):
        read_feature_table(path)


def test_non_finite_values_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nan.parquet"
    _write_raw(path, [0, 1], [[1.0, 2.0], [float("inf"), 0.0]], [True, True])
    with pytest.raises(ValueError, match=r"nan\.parquet.*1 rows with NaN or inf"):
        read_feature_table(path)


def test_nan_rows_name_the_count_and_the_first_entity(tmp_path: Path) -> None:
    path = tmp_path / "nan.parquet"
    vectors = [[1.0, 2.0], [3.0, 4.0], [float("nan"), 0.0], [5.0, float("nan")]]
    _write_raw(path, [0, 1, 2, 3], vectors, [True] * 4)
    with pytest.raises(ValueError, match=r"nan\.parquet is invalid: .*2 rows with NaN or inf .*first: row 2, entity id 2"):
        read_feature_table(path)


def _write_columns(path: Path, **columns: pa.Array) -> None:
    base = {
        "id": pa.array([0, 1], type=pa.int64()),
        "present": pa.array([True, True]),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0], type=pa.float32()), 1),
    }
    pq.write_table(pa.table({**base, **columns}), path)


@pytest.mark.parametrize(
    ("column", "array", "problem"),
    [
        ("vector", pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0], type=pa.float64()), 1),
         r"column 'vector' must be fixed_size_list<float32>, found fixed_size_list<\w+: double>\[1\]"),
        ("vector", pa.FixedSizeListArray.from_arrays(pa.array([1, 2], type=pa.int64()), 1),
         r"column 'vector' must be fixed_size_list<float32>, found fixed_size_list<\w+: int64>\[1\]"),
        ("vector", pa.array(["1.0", "2.0"]), r"column 'vector' must be fixed_size_list<float32>, found string"),
        ("vector", pa.array([[1.0], [2.0]], type=pa.list_(pa.float32())),
         r"column 'vector' must be fixed_size_list<float32>, found list<\w+: float>"),
        ("present", pa.array([1, 0], type=pa.int8()), r"column 'present' must be bool, found int8"),
        ("id", pa.array(["0", "1"]), r"column 'id' must be integer, found string"),
    ],
)
def test_wrong_column_dtype_is_rejected(tmp_path: Path, column: str, array: pa.Array, problem: str) -> None:
    path = tmp_path / "typed.parquet"
    _write_columns(path, **{column: array})
    with pytest.raises(ValueError, match=rf"feature table .*typed\.parquet: {problem}"):
        read_feature_table(path)


def test_unreadable_file_count_round_trips(tmp_path: Path) -> None:
    base = _table()
    table = FeatureTable(base.vectors, base.present, "clip:tiny", num_unreadable_files=3)
    write_feature_table(tmp_path / "image.parquet", table)
    assert read_feature_table(tmp_path / "image.parquet").num_unreadable_files == 3


@pytest.mark.parametrize("count", [-1, 1.5, True])
def test_unreadable_file_count_must_be_a_count(count: object) -> None:
    base = _table()
    with pytest.raises(ValueError, match="num_unreadable_files must be an int >= 0"):
        FeatureTable(base.vectors, base.present, "x", num_unreadable_files=count)  # type: ignore[arg-type]


def test_missing_column_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "cols.parquet"
    pq.write_table(pa.table({"id": pa.array([0], type=pa.int64())}), path)
    with pytest.raises(ValueError, match=r"cols\.parquet.*lacks column"):
        read_feature_table(path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.parquet"):
        read_feature_table(tmp_path / "nowhere.parquet")


def test_weights_round_trip_and_older_tables_read_as_unrecorded(tmp_path: Path) -> None:
    base = _table()
    table = FeatureTable(base.vectors, base.present, "open_clip:tiny", weights="/models/tiny.pt")
    path = tmp_path / "image.parquet"
    write_feature_table(path, table)
    assert read_feature_table(path).weights == "/models/tiny.pt"
    arrow = pq.read_table(path)
    older = {key: value for key, value in arrow.schema.metadata.items() if key != b"dhns.weights"}
    pq.write_table(arrow.replace_schema_metadata(older), path)  # as written before weights were recorded
    back = read_feature_table(path)
    assert (back.source, back.weights) == ("open_clip:tiny", "")


def test_weights_must_be_a_string() -> None:
    base = _table()
    with pytest.raises(ValueError, match="FeatureTable.weights must be a str"):
        FeatureTable(base.vectors, base.present, "x", weights=None)  # type: ignore[arg-type]
