from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from dhns.features.image import encode_images, find_entity_images, safe_entity_filename


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("<http://dbpedia.org/resource/Berlin>", "Berlin"),
        ("http://www.wikidata.org/entity/Q42", "Q42"),
        ("http://example.org/onto#Thing", "Thing"),
        ("/m/027rn", "m.027rn"),
        ("AC/DC: Live", "AC_DC__Live"),
        ("Zürich", "Zürich"),
        ("..", "_"),
        ("", "_"),
    ],
)
def test_safe_entity_filename(name: str, expected: str) -> None:
    assert safe_entity_filename(name) == expected


def test_safe_entity_filename_caps_length_and_stays_unique() -> None:
    a, b = safe_entity_filename("x" * 400), safe_entity_filename("x" * 401)
    assert len(a) < 200 and a != b


def test_find_images_folder_per_entity(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    names = ["<http://dbpedia.org/resource/Berlin>", "http://www.wikidata.org/entity/Q42", "Nobody"]
    berlin = [write_image(tmp_path / "Berlin" / f"{i}.jpg", seed=i) for i in (2, 1)]
    by_id = write_image(tmp_path / "1" / "photo.PNG", seed=3)
    (tmp_path / "Berlin" / "notes.txt").write_text("not an image")
    (tmp_path / "Nobody").mkdir()  # empty folder: no images
    found = find_entity_images(tmp_path, names)
    assert found == {0: sorted(berlin), 1: [by_id]}


def test_find_images_file_per_entity(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    names = ["/m/027rn", "AC/DC", "Q5", "missing"]
    a = write_image(tmp_path / "m.027rn.jpg", seed=0)
    b = write_image(tmp_path / "AC_DC.webp", seed=1)
    c = write_image(tmp_path / "2.png", seed=2)
    (tmp_path / "missing.txt").write_text("not an image")
    assert find_entity_images(tmp_path, names) == {0: [a], 1: [b], 2: [c]}


def test_find_images_missing_dir_is_empty(tmp_path: Path) -> None:
    assert find_entity_images(tmp_path / "absent", ["a", "b"]) == {}


def test_find_images_warns_on_name_collisions(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    write_image(tmp_path / "a_b.jpg", seed=0)
    with pytest.warns(UserWarning, match="same image file name"):
        found = find_entity_images(tmp_path, ["a/b", "a_b"])
    assert set(found) == {0, 1}


def _reference_vectors(encode: Callable[[list], torch.Tensor], paths: list[Path]) -> torch.Tensor:
    from PIL import Image

    with torch.no_grad():
        return encode([Image.open(p).convert("RGB") for p in paths])  # (len(paths), dim)


def _layout(tmp_path: Path, write_image: Callable[..., Path]) -> dict[int, list[Path]]:
    """Entity 0: two images; entity 2: one image and one corrupt file; entity 3: only a corrupt file."""
    corrupt_a = tmp_path / "img" / "broken_a.jpg"
    corrupt_b = tmp_path / "img" / "broken_b.png"
    write_image(corrupt_a, seed=99)
    corrupt_a.write_bytes(corrupt_a.read_bytes()[:40])  # truncated JPEG
    corrupt_b.write_bytes(b"definitely not a png")
    return {
        0: [write_image(tmp_path / "img" / "e0_a.png", seed=1), write_image(tmp_path / "img" / "e0_b.jpg", seed=2, size=(48, 40))],
        2: [write_image(tmp_path / "img" / "e2.png", seed=3), corrupt_a],
        3: [corrupt_b],
    }


def _assert_warned_about(record: pytest.WarningsRecorder, file_names: list[str]) -> None:
    messages = [str(w.message) for w in record]
    for name in file_names:
        assert sum(name in m for m in messages) == 1, f"expected one warning naming {name}: {messages}"


def _check_table(table, skipped: int, images: dict[int, list[Path]], reference: torch.Tensor) -> None:
    # reference rows: e0_a, e0_b, e2
    assert skipped == 2 and table.num_unreadable_files == 2
    assert table.num_entities == 5
    assert table.present.tolist() == [True, False, True, False, False]
    torch.testing.assert_close(table.vectors[0], reference[:2].mean(dim=0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(table.vectors[2], reference[2], atol=1e-5, rtol=1e-5)
    assert not table.vectors[[1, 3, 4]].any()


def test_encode_images_with_tiny_clip(tmp_path: Path, write_image: Callable[..., Path], tiny_clip) -> None:
    import open_clip

    images = _layout(tmp_path, write_image)
    with pytest.warns(UserWarning, match="skipping unreadable image") as record:
        table, skipped = encode_images(
            images, 5, backend="clip", model=tiny_clip.model, pretrained=str(tiny_clip.checkpoint),
            batch_size=2, show_progress=False,
        )
    _assert_warned_about(record, ["broken_a.jpg", "broken_b.png"])
    assert table.dim == 8
    assert (table.source, table.weights) == (f"open_clip:{tiny_clip.model}", str(tiny_clip.checkpoint))

    model, _, preprocess = open_clip.create_model_and_transforms(tiny_clip.model, pretrained=str(tiny_clip.checkpoint))
    model.eval()
    reference = _reference_vectors(
        lambda imgs: model.encode_image(torch.stack([preprocess(i) for i in imgs])),
        [images[0][0], images[0][1], images[2][0]],
    )
    _check_table(table, skipped, images, reference)


def test_encode_images_with_tiny_vit(tmp_path: Path, write_image: Callable[..., Path], tiny_vit_dir: Path) -> None:
    from transformers import AutoImageProcessor, AutoModel

    images = _layout(tmp_path, write_image)
    with pytest.warns(UserWarning, match="skipping unreadable image") as record:
        table, skipped = encode_images(
            images, 5, backend="vit", model=str(tiny_vit_dir), batch_size=3, show_progress=False
        )
    _assert_warned_about(record, ["broken_a.jpg", "broken_b.png"])
    assert table.dim == 16
    assert (table.source, table.weights) == (f"transformers:{tiny_vit_dir}", str(tiny_vit_dir))

    processor = AutoImageProcessor.from_pretrained(tiny_vit_dir)
    model = AutoModel.from_pretrained(tiny_vit_dir).eval()
    reference = _reference_vectors(
        lambda imgs: model(pixel_values=processor(images=imgs, return_tensors="pt")["pixel_values"]).pooler_output,
        [images[0][0], images[0][1], images[2][0]],
    )
    _check_table(table, skipped, images, reference)


def test_encode_images_all_unreadable_keeps_shape(tmp_path: Path, tiny_vit_dir: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00" * 10)
    with pytest.warns(UserWarning, match=r"bad\.jpg"):
        table, skipped = encode_images({1: [bad]}, 3, backend="vit", model=str(tiny_vit_dir), show_progress=False)
    assert skipped == 1
    assert table.vectors.shape == (3, 16)
    assert not table.present.any()


def test_unknown_backend_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown image backend 'resnet'.*clip, vit"):
        encode_images({}, 1, backend="resnet", model="x")


def test_entity_id_out_of_range_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside 0..1"):
        encode_images({5: [tmp_path / "x.jpg"]}, 2, backend="vit", model="unused")


def test_vit_without_pooler_weights_uses_cls_token(
    tmp_path: Path, write_image: Callable[..., Path], tiny_vit_dir: Path
) -> None:
    """A checkpoint saved without a pooler must not get a randomly initialised one."""
    from transformers import AutoImageProcessor, ViTConfig, ViTModel

    folder = tmp_path / "vit_no_pooler"
    torch.manual_seed(1)
    model = ViTModel(ViTConfig.from_pretrained(tiny_vit_dir), add_pooling_layer=False).eval()
    model.save_pretrained(folder)
    AutoImageProcessor.from_pretrained(tiny_vit_dir).save_pretrained(folder)
    image = write_image(tmp_path / "e0.png", seed=5)

    table, skipped = encode_images({0: [image]}, 1, backend="vit", model=str(folder), show_progress=False)
    processor = AutoImageProcessor.from_pretrained(folder)
    expected = _reference_vectors(
        lambda imgs: model(pixel_values=processor(images=imgs, return_tensors="pt")["pixel_values"]).last_hidden_state[:, 0],
        [image],
    )
    assert skipped == 0
    torch.testing.assert_close(table.vectors, expected, atol=1e-5, rtol=1e-5)


def test_garbage_and_truncated_png_are_skipped_counted_and_recorded(
    tmp_path: Path, write_image: Callable[..., Path], tiny_vit_dir: Path
) -> None:
    """Broken files never abort extraction: each is named in a warning, counted, and the count reaches the manifest."""
    import json

    from dhns.features.bundle import MANIFEST, write_feature_bundle

    good = write_image(tmp_path / "img" / "0.png", seed=1)
    garbage = tmp_path / "img" / "1.png"
    garbage.write_bytes(b"\x89PNG but then garbage " * 4)
    truncated = write_image(tmp_path / "img" / "2.png", seed=2)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])  # cut inside the pixel data
    images = find_entity_images(tmp_path / "img", ["a", "b", "c"])
    assert images == {0: [good], 1: [garbage], 2: [truncated]}

    with pytest.warns(UserWarning, match="skipping unreadable image") as record:
        table, skipped = encode_images(images, 3, backend="vit", model=str(tiny_vit_dir), show_progress=False)
    _assert_warned_about(record, [str(garbage), str(truncated)])
    assert skipped == 2 and table.num_unreadable_files == 2
    assert table.present.tolist() == [True, False, False]
    assert not table.vectors[1:].any()

    write_feature_bundle(tmp_path / "features", {"image": table}, {})
    manifest = json.loads((tmp_path / "features" / MANIFEST).read_text())
    assert manifest["modalities"]["image"]["num_unreadable_files"] == 2
    assert manifest["modalities"]["image"]["num_present"] == 1
