from __future__ import annotations

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
    with pytest.raises(ValueError, match=r"X-visual\.pth.*2 rows with NaN or inf"):
        load_feature_file(path, num_entities=4)


def test_integer_dtype(tmp_path: Path) -> None:
    path = _save(tmp_path, torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"X-visual\.pth.*int64.*floating"):
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
