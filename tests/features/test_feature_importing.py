from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dhns.features.importing import find_import_files, load_feature_file


def test_good_pth_file(tmp_path: Path) -> None:
    matrix = torch.randn(4, 3, dtype=torch.float64)  # (num_entities, d)
    matrix[2] = 0.0
    path = tmp_path / "DB15K-visual.pth"
    torch.save(matrix, path)
    table = load_feature_file(path, num_entities=4)
    assert table.vectors.dtype == torch.float32
    torch.testing.assert_close(table.vectors, matrix.float())
    assert table.present.tolist() == [True, True, False, True]
    assert table.source == "import:DB15K-visual.pth"


def test_good_npy_file(tmp_path: Path) -> None:
    path = tmp_path / "MKG-Y-textual.npy"
    np.save(path, np.ones((2, 5), dtype=np.float16))
    table = load_feature_file(path, num_entities=2)
    assert table.vectors.shape == (2, 5) and table.present.all()


def _save(tmp_path: Path, value: object, name: str = "X-visual.pth") -> Path:
    path = tmp_path / name
    torch.save(value, path)
    return path


def test_wrong_row_count(tmp_path: Path) -> None:
    path = _save(tmp_path, torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"X-visual\.pth.*expected 5, found 3"):
        load_feature_file(path, num_entities=5)


def test_nan_rows(tmp_path: Path) -> None:
    matrix = torch.ones(4, 2)
    matrix[1, 0] = float("nan")
    matrix[3, 1] = float("inf")
    path = _save(tmp_path, matrix)
    with pytest.raises(ValueError, match=r"X-visual\.pth has 2 rows with NaN or inf .*\(first: row 1, entity id 1\)"):
        load_feature_file(path, num_entities=4)


def test_nan_rows_in_npy(tmp_path: Path) -> None:
    matrix = np.ones((3, 2), dtype=np.float32)
    matrix[2, 1] = np.nan
    path = tmp_path / "X-textual.npy"
    np.save(path, matrix)
    with pytest.raises(ValueError, match=r"X-textual\.npy has 1 rows with NaN .*\(first: row 2, entity id 2\)"):
        load_feature_file(path, num_entities=3)


def test_wrong_row_count_in_npy(tmp_path: Path) -> None:
    path = tmp_path / "X-textual.npy"
    np.save(path, np.ones((6, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"X-textual\.npy has 6 rows but the dataset has 4 entities"):
        load_feature_file(path, num_entities=4)


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.bool, torch.complex64])
def test_non_float_dtype(tmp_path: Path, dtype: torch.dtype) -> None:
    path = _save(tmp_path, torch.ones(2, 2, dtype=dtype))
    with pytest.raises(ValueError, match=rf"X-visual\.pth has dtype {dtype}, expected a floating-point tensor"):
        load_feature_file(path, num_entities=2)


@pytest.mark.parametrize(
    ("array", "dtype"),
    [
        (np.array([["a", "b"], ["c", "d"]]), "<U1"),
        (np.ones((2, 2), dtype=np.int32), "int32"),
        (np.zeros(2, dtype=[("x", np.float32), ("y", np.float32)]), r"\[\('x', '<f4'\), \('y', '<f4'\)\]"),
    ],
)
def test_non_float_npy(tmp_path: Path, array: np.ndarray, dtype: str) -> None:
    path = tmp_path / "X-textual.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=rf"X-textual\.npy has dtype {dtype}, expected a floating-point matrix"):
        load_feature_file(path, num_entities=2)


def test_object_npy_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "X-textual.npy"
    np.save(path, np.array([[1.0, "x"], [None, 2.0]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"X-textual\.npy could not be read as a tensor.*pickle"):
        load_feature_file(path, num_entities=2)


def test_list_of_strings(tmp_path: Path) -> None:
    path = _save(tmp_path, [["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match=r"X-visual\.pth holds a list, expected a 2-D float tensor"):
        load_feature_file(path, num_entities=2)


def test_one_dimensional_tensor(tmp_path: Path) -> None:
    path = _save(tmp_path, torch.ones(4))
    with pytest.raises(ValueError, match=r"X-visual\.pth.*1-D.*expected 2-D"):
        load_feature_file(path, num_entities=4)


def test_not_a_tensor(tmp_path: Path) -> None:
    path = _save(tmp_path, {"features": torch.ones(2, 2)})
    with pytest.raises(ValueError, match=r"X-visual\.pth.*dict"):
        load_feature_file(path, num_entities=2)


@pytest.mark.parametrize("name", ["junk-textual.pth", "junk-textual.npy"])
def test_garbage_bytes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x80\x02 this is not a tensor file at all \x00\xff" * 3)
    with pytest.raises(ValueError, match=rf"{name.replace('.', chr(92) + '.')}.*could not be read"):
        load_feature_file(path, num_entities=2)


def test_find_import_files(tmp_path: Path) -> None:
    torch.save(torch.zeros(1, 1), tmp_path / "DB15K-visual.pth")
    np.save(tmp_path / "DB15K-textual.npy", np.zeros((1, 1), dtype=np.float32))
    torch.save(torch.zeros(1, 1), tmp_path / "MKG-Y-visual.pth")
    assert find_import_files(tmp_path, "DB15K") == {
        "image": tmp_path / "DB15K-visual.pth",
        "text": tmp_path / "DB15K-textual.npy",
    }
    assert find_import_files(tmp_path, "FB15K-237") == {}
    assert find_import_files(tmp_path / "absent", "DB15K") == {}


def test_sparse_matrix_is_read_as_dense(tmp_path: Path) -> None:
    matrix = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    path = _save(tmp_path, matrix.to_sparse())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch notes that it validates sparse invariants
        table = load_feature_file(path, num_entities=3)
    assert torch.equal(table.vectors, matrix)
    assert table.present.tolist() == [True, False, True]
