"""The files the features stage reads because a param names them, as content digests DVC can compare.

`features.import_dir`, a local `features.text_encoder` or `image_model` folder and an `image_pretrained`
weights file live outside the pipeline (often outside the repository), and what a param names can change
on disk while the param stays the same. DVC cannot list such a dep conditionally, so a cheap stage that
always runs (`feature_inputs`) writes their digests to one small file, which the features stage depends
on: when the digests are unchanged, DVC skips features as usual; when a file was replaced, it reruns.

Only content and the names a user chose are recorded, never where a package happens to be installed, so
the digest file is the same on every machine with the same inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dhns.config import FeaturesConfig
from dhns.io import file_md5 as file_digest

IMPORT_SUFFIX = {"image": "visual", "text": "textual"}  # modality -> `{dataset}-{suffix}.pth` of the community dumps
IMPORT_EXTENSIONS = (".pth", ".npy")


def find_import_files(import_dir: Path, dataset: str) -> dict[str, Path]:
    """Map each modality to ``{dataset}-visual.pth`` / ``{dataset}-textual.pth`` (or ``.npy``) when present."""
    found: dict[str, Path] = {}
    for modality, suffix in IMPORT_SUFFIX.items():
        for extension in IMPORT_EXTENSIONS:
            candidate = Path(import_dir) / f"{dataset}-{suffix}{extension}"
            if candidate.is_file():
                found[modality] = candidate
                break
    return found


def folder_digests(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden caches and bytecode aside), by path relative to it."""
    return {path.relative_to(folder).as_posix(): file_digest(path) for path in sorted(folder.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(".")}


def path_digests(path: Path) -> dict[str, str]:
    return folder_digests(path) if path.is_dir() else {path.name: file_digest(path)}


def encoder_record(name: str, packaged: dict[str, Path]) -> dict[str, Any]:
    """What a text or image encoder setting reads: a packaged folder, a local path, or a hub id."""
    if name in packaged:
        return {"name": name, "packaged": True, "files": folder_digests(packaged[name])}
    local = Path(name).expanduser()
    if local.exists():
        return {"name": name, "files": path_digests(local)}
    return {"name": name, "hub_id": True, "files": _hub_cache_digests(name)}


def _hub_cache_digests(model_id: str) -> dict[str, str]:
    """A hub id's files in the local Hugging Face cache (what transformers loads offline); {} when absent."""
    try:
        from huggingface_hub import snapshot_download

        return folder_digests(Path(snapshot_download(model_id, local_files_only=True)))
    except Exception:  # noqa: BLE001 - not cached, or not a hub id at all: nothing local to track
        return {}


def packaged_text_encoders() -> dict[str, Path]:
    from dhns.features.text import DEFAULT_TEXT_ENCODER, resolve_text_encoder

    try:
        return {DEFAULT_TEXT_ENCODER: Path(resolve_text_encoder(DEFAULT_TEXT_ENCODER))}
    except ValueError:  # the package is missing: the features stage will say so
        return {}


def feature_inputs(config: FeaturesConfig, dataset: str, raw_dir: Path) -> dict[str, Any]:
    """Digests of everything the features stage reads because `config` names it (the raw dataset aside)."""
    record: dict[str, Any] = {"dataset": dataset}
    imported = find_import_files(Path(config.import_dir), dataset) if config.import_dir else {}
    record["imported"] = {modality: {"file": path.name, "md5": file_digest(path)} for modality, path in imported.items()}
    if "text" not in imported:
        record["text_encoder"] = encoder_record(config.text_encoder, packaged_text_encoders())
    if "image" not in imported and (raw_dir / "images").is_dir():  # images exist: the image settings are read
        record["image_model"] = encoder_record(config.image_model, {})
        weights = Path(config.image_pretrained).expanduser() if config.image_pretrained else None
        if weights is not None and weights.is_file():
            record["image_pretrained"] = {"name": config.image_pretrained, "md5": file_digest(weights)}
    return record
