"""Missing or damaged model folders: each error names the folder, the file and the stage that writes it.

Data, features and params have their own bad-input tests (test_data.py, features/, test_config.py);
these are the checkpoints that one stage hands to the next.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Iterator

import pytest
import torch

from configs import model_config
from dhns.diffusion.generator import build_generator, load_generator, save_generator
from dhns.io import read_json, read_safetensors, require_files, stage_hint
from dhns.models.kgc import KGCModel, load_model, save_model


@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    """A tiny model saved where the pipeline keeps it: models/pretrain."""
    torch.manual_seed(0)
    model = KGCModel(model_config(name="transe", embedding_dim=4), 6, 2, None)
    folder = tmp_path / "models" / "pretrain"
    save_model(model, folder)
    return folder


@pytest.fixture
def saved_generator(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = KGCModel(model_config(name="transe", embedding_dim=4), 6, 2, None)
    folder = tmp_path / "models" / "diffusion"
    save_generator(build_generator(model, num_steps=4, beta_start=1e-4, beta_end=0.02), folder)
    return folder


# --------------------------------------------------------------------------------------------------
# The shared helpers


def test_require_files_names_folder_file_and_remedy(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere does not exist; run `dvc repro pretrain` to produce it"):
        require_files(tmp_path / "nowhere", ["model.json"], stage_hint("pretrain"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "a.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"half is incomplete: b\.bin is missing \(.*half/b\.bin\); fix it"):
        require_files(tmp_path / "half", ["a.json", "b.bin"], "fix it")
    (tmp_path / "plain").write_text("")
    with pytest.raises(FileNotFoundError, match=r"plain is a file, not a folder"):
        require_files(tmp_path / "plain", [], "fix it")


def test_read_json_names_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"a": 1,')
    with pytest.raises(ValueError, match=r"broken\.json: not a valid JSON file"):
        read_json(path)


def test_read_safetensors_names_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"w\.safetensors: not a readable safetensors file .*; redo"):
        read_safetensors(path, "redo")


# --------------------------------------------------------------------------------------------------
# load_model


@pytest.mark.parametrize("stage", ["pretrain", "train"])
def test_missing_model_folder_names_the_stage(tmp_path: Path, stage: str) -> None:
    folder = tmp_path / "models" / stage
    with pytest.raises(FileNotFoundError, match=rf"models/{stage} does not exist; run `dvc repro {stage}`"):
        load_model(folder, None)


@pytest.mark.parametrize("missing", ["model.json", "model.safetensors"])
def test_incomplete_model_folder_names_the_file(saved_model: Path, missing: str) -> None:
    (saved_model / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"models/pretrain is incomplete: {missing} is missing.*dvc repro pretrain"):
        load_model(saved_model, None)


def test_model_folder_elsewhere_gets_a_generic_remedy(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"elsewhere does not exist; it is written by save_model"):
        load_model(tmp_path / "elsewhere", None)


@pytest.mark.parametrize(
    "damage",
    [b"", b"garbage, not safetensors" * 3, "truncate"],
    ids=["empty", "garbage", "truncated"],
)
def test_corrupt_model_weights_name_the_file(saved_model: Path, damage: bytes | str) -> None:
    weights = saved_model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else damage)
    with pytest.raises(ValueError, match=r"models/pretrain/model\.safetensors: not a readable safetensors file.*dvc repro pretrain"):
        load_model(saved_model, None)


@pytest.mark.parametrize(
    ("description", "problem"),
    [
        ("{truncated", "not a valid JSON file"),
        (json.dumps({"model": {"name": "transe"}}), r"not a model description written by save_model.*missing key\(s\)"),
        (json.dumps({"model": {"name": "transe", "embedding_dim": 4, "margin": 1.0, "use_features": False}}),
         "not a model description written by save_model.*KeyError"),
        (json.dumps({"model": {"name": "foo", "embedding_dim": 4, "margin": 1.0, "use_features": False},
                     "modalities": [], "num_entities": 6, "num_relations": 2}),
         "not a model description written by save_model.*'foo' is not one of"),
    ],
)
def test_damaged_model_description_names_the_file(saved_model: Path, description: str, problem: str) -> None:
    (saved_model / "model.json").write_text(description)
    with pytest.raises(ValueError, match=rf"models/pretrain/model\.json: {problem}"):
        load_model(saved_model, None)


def test_weights_of_another_model_name_the_file(saved_model: Path) -> None:
    description = json.loads((saved_model / "model.json").read_text())
    description["num_entities"] = 9  # as if model.json came from another dataset's run
    (saved_model / "model.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match=r"model\.safetensors: weights do not fit the model described in model\.json"):
        load_model(saved_model, None)


# --------------------------------------------------------------------------------------------------
# load_generator


def test_missing_generator_folder_names_the_stage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"models/diffusion does not exist; run `dvc repro diffusion`"):
        load_generator(tmp_path / "models" / "diffusion")


@pytest.mark.parametrize("missing", ["generator.json", "generator.safetensors"])
def test_incomplete_generator_folder_names_the_file(saved_generator: Path, missing: str) -> None:
    (saved_generator / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"incomplete: {missing} is missing.*dvc repro diffusion"):
        load_generator(saved_generator)


def test_corrupt_generator_weights_name_the_file(saved_generator: Path) -> None:
    (saved_generator / "generator.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match=r"generator\.safetensors: not a readable safetensors file.*dvc repro diffusion"):
        load_generator(saved_generator)


def test_saved_model_and_generator_still_load(saved_model: Path, saved_generator: Path) -> None:
    assert load_model(saved_model, None).num_entities == 6
    assert load_generator(saved_generator).levels == ("structural",)


# --------------------------------------------------------------------------------------------------
# File modes


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=["umask022", "umask077", "umask002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under a known umask, restoring the caller's afterwards."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_saved_model_and_generator_files_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    # safetensors' save_file renames its own 0600 temporary file into place; the outputs must still be
    # readable by whoever the user's umask allows, like every other output of the pipeline
    model = KGCModel(model_config(name="transe", embedding_dim=4), 6, 2, None)
    save_model(model, tmp_path / "model")
    save_generator(build_generator(model, num_steps=4, beta_start=1e-4, beta_end=0.02), tmp_path / "generator")
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.glob("*/*")}
    assert set(modes) == {"model.json", "model.safetensors", "generator.json", "generator.safetensors"}
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)
