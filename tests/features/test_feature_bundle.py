"""The features stage's output folder: what later stages get told when it is missing, stale or damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dhns.features.bundle import MANIFEST, read_feature_bundle, write_feature_bundle
from dhns.features.store import FeatureTable


def _table(num_entities: int, dim: int = 2, unreadable: int = 0) -> FeatureTable:
    vectors = torch.arange(num_entities * dim, dtype=torch.float32).reshape(num_entities, dim) + 1  # (n, dim)
    present = torch.ones(num_entities, dtype=torch.bool)
    return FeatureTable(vectors, present, "unit-test", num_unreadable_files=unreadable)


def test_round_trip_and_manifest_records_unreadable_files(tmp_path: Path) -> None:
    out = tmp_path / "features"
    write_feature_bundle(out, {"text": _table(4), "image": _table(4, unreadable=2)}, {})
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["modalities"]["image"]["num_unreadable_files"] == 2
    assert manifest["modalities"]["text"]["num_unreadable_files"] == 0
    features = read_feature_bundle(out, num_entities=4)
    assert sorted(features) == ["image", "text"]
    assert features["image"][0].shape == (4, 2)


def test_wrong_row_count_names_the_file(tmp_path: Path) -> None:
    out = tmp_path / "features"
    write_feature_bundle(out, {"text": _table(3)}, {})
    with pytest.raises(ValueError, match=r"text\.parquet: 3 rows but the graph has 5 entities.*dvc repro features"):
        read_feature_bundle(out, num_entities=5)


def test_missing_folder_names_the_stage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"features does not exist; run `dvc repro features`"):
        read_feature_bundle(tmp_path / "features", num_entities=3)


def test_missing_table_names_the_file_and_the_stage(tmp_path: Path) -> None:
    out = tmp_path / "features"
    write_feature_bundle(out, {"text": _table(3), "image": _table(3)}, {})
    (out / "image.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"image\.parquet is missing .*dvc repro features"):
        read_feature_bundle(out, num_entities=3)


@pytest.mark.parametrize(("content", "problem"), [("{not json", "not a valid JSON file"), ("[]", "'modalities' mapping")])
def test_damaged_manifest_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    out = tmp_path / "features"
    write_feature_bundle(out, {"text": _table(3)}, {})
    (out / MANIFEST).write_text(content)
    with pytest.raises(ValueError, match=rf"manifest\.json: .*{problem}"):
        read_feature_bundle(out, num_entities=3)


def test_failure_midway_keeps_the_previous_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dhns.features import bundle

    out = tmp_path / "features"
    write_feature_bundle(out, {"text": _table(3)}, {})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_write = bundle.write_feature_table

    def fail_on_image(path: Path, table: FeatureTable) -> None:
        if path.name == "image.parquet":
            raise OSError("disk full")
        real_write(path, table)

    monkeypatch.setattr(bundle, "write_feature_table", fail_on_image)
    with pytest.raises(OSError, match="disk full"):
        write_feature_bundle(out, {"text": _table(3, dim=5), "image": _table(3)}, {})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_manifest_records_encoder_and_weights_and_older_manifests_still_read(tmp_path: Path) -> None:
    out = tmp_path / "features"
    table = FeatureTable(_table(3).vectors, _table(3).present, "transformers:minilm", weights="/site-packages/minilm")
    write_feature_bundle(out, {"text": table}, {"image": "no images"})
    manifest = json.loads((out / MANIFEST).read_text())
    entry = manifest["modalities"]["text"]
    assert (entry["encoder"], entry["weights"], entry["source"]) == (
        "transformers:minilm", "/site-packages/minilm", "transformers:minilm"
    )
    for key in ("encoder", "weights"):  # the manifest as written before they were recorded
        del entry[key]
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert sorted(read_feature_bundle(out, num_entities=3)) == ["text"]
