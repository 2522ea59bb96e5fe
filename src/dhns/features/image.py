"""Image modality: find each entity's pictures on disk and embed them with CLIP or a ViT.

Image layout under ``images_dir`` (either form, mixed freely, per entity):

* a folder per entity, ``images_dir/<key>/*.jpg`` (every image file in it is used);
* a single file per entity, ``images_dir/<key>.<jpg|jpeg|png|webp|bmp|gif>``;

where ``<key>`` is ``safe_entity_filename(name)`` or the entity's integer id. Naming by id is always
unambiguous; naming by safe name is what scraped multimodal KG image dumps usually do.

Both libraries build a randomly initialised encoder when given no weights and only log it, which would
yield plausible-looking but meaningless features; so an encoder without weights is refused unless random
weights are asked for by name (``features.image_pretrained: random``), and the weights used are recorded
on the table (`FeatureTable.weights`) and so in the features manifest.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from dhns.features.store import FeatureTable

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
BACKENDS = ("clip", "vit")
RANDOM_WEIGHTS = "random"  # the features.image_pretrained value that opts in to randomly initialised weights
RANDOM_WEIGHTS_NOTE = f"random (features.image_pretrained: {RANDOM_WEIGHTS})"  # what the manifest records then
_OPT_IN = (
    f"or set features.image_pretrained: {RANDOM_WEIGHTS} to opt in to random weights explicitly "
    "(meaningless features, for smoke tests only)"
)
_OPEN_CLIP_SCHEMAS = ("hf-hub:", "local-dir:")  # open_clip model names that bring their own weights
_MAX_NAME_CHARS = 150  # leaves room under the usual 255-byte limit for extension and multi-byte chars
_UNSAFE = re.compile(r"[^\w.\-]", flags=re.UNICODE)
_FREEBASE_MID = re.compile(r"^/([mg])/([0-9a-z_]+)$")

# Image encoders: (batch of PIL images) -> (batch, dim) float tensor on CPU.
ImageEncoder = Callable[[list[Any]], torch.Tensor]


def safe_entity_filename(name: str) -> str:
    """Map an entity name to the file/folder name its images are stored under.

    Rules, applied in order:

    1. surrounding whitespace and N-Triples angle brackets are dropped (``<http://...>`` -> ``http://...``);
    2. a URI (``scheme://...``) is reduced to its last path segment or fragment, so
       ``http://dbpedia.org/resource/Berlin`` -> ``Berlin`` and ``http://www.wikidata.org/entity/Q42`` -> ``Q42``;
    3. a Freebase MID ``/m/0abc`` becomes ``m.0abc``, the spelling used by the FB15k image dumps;
    4. every character other than a Unicode letter, digit, ``_``, ``.`` or ``-`` becomes ``_``;
    5. a name that is empty, ``.`` or ``..`` becomes ``_``; one longer than 150 characters is cut and
       suffixed with 8 hex digits of its SHA-1, so it stays unique and fits filesystem limits.

    Distinct names can collide (``a/b`` and ``a_b``); `find_entity_images` warns when they do, and
    naming files by entity id avoids the question.
    """
    text = name.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if "://" in text:
        tail = re.split(r"[/#]", text.rstrip("/#"))[-1]
        text = tail or text
    else:
        mid = _FREEBASE_MID.match(text)
        if mid:
            text = f"{mid.group(1)}.{mid.group(2)}"
    safe = _UNSAFE.sub("_", text)
    if safe in ("", ".", ".."):
        safe = "_"
    if len(safe) > _MAX_NAME_CHARS:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
        safe = f"{safe[:_MAX_NAME_CHARS]}_{digest}"
    return safe


def find_entity_images(images_dir: Path, entity_names: Sequence[str]) -> dict[int, list[Path]]:
    """Return, for each entity id with at least one image, its image files sorted by path.

    The directory is listed once instead of probing each entity's candidate names, because datasets have
    tens of thousands of entities and probing would cost a dozen stat calls each.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        return {}
    folders: dict[str, Path] = {}
    files: dict[str, list[Path]] = {}
    with os.scandir(images_dir) as entries:
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir():
                folders[entry.name] = path
            elif entry.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                files.setdefault(path.stem, []).append(path)

    keys = [safe_entity_filename(name) for name in entity_names]
    _warn_on_collisions(keys, entity_names)
    found: dict[int, list[Path]] = {}
    for entity_id, key in enumerate(keys):
        paths: set[Path] = set()
        for candidate in dict.fromkeys((key, str(entity_id))):
            if candidate in folders:
                paths.update(_images_in(folders[candidate]))
            paths.update(files.get(candidate, ()))
        if paths:
            found[entity_id] = sorted(paths)
    return found


def encode_images(
    images: dict[int, list[Path]],
    num_entities: int,
    *,
    backend: str,
    model: str,
    pretrained: str | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
) -> tuple[FeatureTable, int]:
    """Embed every entity's images and average them per entity; return the table and the number of skipped files.

    A dataset scraped from the web always holds a few broken files, so an unreadable image is skipped with a
    warning naming it instead of aborting hours of work; an entity left with no readable image is marked not
    present. The skip count is also kept on the table (`num_unreadable_files`), which the manifest records.
    `backend` "clip" takes an open_clip architecture `model` and a `pretrained` tag or weights file (or a
    'local-dir:'/'hf-hub:' `model` that carries its weights, with no `pretrained`); "vit" takes a transformers
    checkpoint with weights (folder or hub id) as `model` and no `pretrained`. Either backend refuses to run
    without weights unless `pretrained` is RANDOM_WEIGHTS; the table's `source` names the encoder and its
    `weights` what it ran with.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown image backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out_of_range = [i for i in images if not 0 <= i < num_entities]
    if out_of_range:
        raise ValueError(f"entity id {out_of_range[0]} is outside 0..{num_entities - 1}")
    device = torch.device(device)
    if backend == "clip":
        encoder, weights = _clip_encoder(model, pretrained, device)
        source = f"open_clip:{model}"
    else:
        encoder, weights = _vit_encoder(model, pretrained, device)
        source = f"transformers:{model}"
    if weights == RANDOM_WEIGHTS_NOTE:
        warnings.warn(f"{source} runs with random weights, as features.image_pretrained: {RANDOM_WEIGHTS} asks; "
                      "the image features carry no visual meaning", stacklevel=2)

    jobs = [(entity, path) for entity in sorted(images) for path in images[entity]]
    sums: torch.Tensor | None = None  # (num_entities, dim), created once the dim is known
    counts = torch.zeros(num_entities, dtype=torch.long)  # (num_entities,) readable images per entity
    skipped = 0
    disable = not (show_progress and sys.stderr is not None and sys.stderr.isatty())
    with torch.inference_mode(), tqdm(total=len(jobs), desc="encoding images", unit="img", disable=disable) as bar:
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start : start + batch_size]
            good: list[tuple[int, Any]] = []
            for entity, path in batch:
                img = _open_image(path)
                if img is None:
                    skipped += 1
                else:
                    good.append((entity, img))
            bar.update(len(batch))
            if not good:
                continue
            vectors = encoder([img for _, img in good]).float()  # (len(good), dim)
            if sums is None:
                sums = torch.zeros((num_entities, vectors.shape[1]), dtype=torch.float64)
            index = torch.tensor([entity for entity, _ in good])
            sums.index_add_(0, index, vectors.double())  # float64 so many images per entity average exactly
            counts.index_add_(0, index, torch.ones_like(index))

    present = counts > 0  # (num_entities,)
    if sums is None:
        sums = torch.zeros((num_entities, _probe_dim(encoder)), dtype=torch.float64)
    vectors = (sums / counts.clamp(min=1).unsqueeze(1)).float()  # (num_entities, dim); absent rows stay 0
    table = FeatureTable(vectors=vectors, present=present, source=source, num_unreadable_files=skipped,
                         weights=weights)
    return table, skipped


def _images_in(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]


def _warn_on_collisions(keys: list[str], names: Sequence[str]) -> None:
    """Two entities sharing a key would silently share images, so say so once."""
    first_owner: dict[str, int] = {}
    clashes: list[tuple[str, str]] = []
    for entity_id, key in enumerate(keys):
        owner = first_owner.setdefault(key, entity_id)
        if owner != entity_id:
            clashes.append((names[owner], names[entity_id]))
    if clashes:
        a, b = clashes[0]
        warnings.warn(
            f"{len(clashes)} entity names map to the same image file name as another entity "
            f"(e.g. {a!r} and {b!r}); they will share images. Name image files by entity id to avoid this.",
            stacklevel=3,
        )


def _open_image(path: Path) -> Any | None:
    """Decode one image to RGB, or warn and return None: decoders raise many error types on bad files."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()  # PIL decodes lazily; force it here so a truncated file fails now, not in the model
            return img.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "skip this file"
        warnings.warn(f"skipping unreadable image {path}: {type(exc).__name__}: {_one_line(exc)}", stacklevel=3)
        return None


def _clip_encoder(model: str, pretrained: str | None, device: torch.device) -> tuple[ImageEncoder, str]:
    """Build an open_clip image encoder and return it with the weights it holds.

    `require_pretrained` makes open_clip fail where it would otherwise fall back to random weights (a tag
    it cannot fetch, a 'local-dir:' folder without a checkpoint); files are loaded strictly by open_clip.
    """
    import open_clip  # heavy import, only when images are actually encoded

    weights = _clip_weights(model, pretrained)
    random_init = weights == RANDOM_WEIGHTS_NOTE
    tag_or_file = None if random_init or model.startswith(_OPEN_CLIP_SCHEMAS) else pretrained
    try:
        clip, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=tag_or_file, load_weights=not random_init, require_pretrained=not random_init,
            device=device,
        )
    except (RuntimeError, OSError, ValueError) as exc:
        raise ValueError(
            f"could not load open_clip model {model!r} with pretrained={pretrained!r}: {_one_line(exc)}. "
            "Offline, pass a checkpoint file as features.image_pretrained (and a config via "
            "open_clip.add_model_config or a 'local-dir:' features.image_model)."
        ) from exc
    clip.eval()

    def encode(batch: list[Any]) -> torch.Tensor:
        pixels = torch.stack([preprocess(img) for img in batch]).to(device)  # (batch, 3, H, W)
        return clip.encode_image(pixels).cpu()  # (batch, embed_dim)

    return encode, weights


def _clip_weights(model: str, pretrained: str | None) -> str:
    """Say which weights open_clip will load, or refuse: without any it silently builds a random model."""
    if pretrained == RANDOM_WEIGHTS:
        return RANDOM_WEIGHTS_NOTE
    if model.startswith(_OPEN_CLIP_SCHEMAS):
        if pretrained:
            raise ValueError(
                f"features.image_pretrained is {pretrained!r}, but features.image_model {model!r} brings its own "
                f"weights and open_clip would ignore it; leave features.image_pretrained empty, {_OPT_IN}"
            )
        return model
    if not pretrained:
        raise ValueError(
            f"features.image_pretrained is empty, so open_clip would encode the images with a randomly "
            f"initialised {model!r}. Set features.image_pretrained to an open_clip pretrained tag of this "
            f"architecture ({_clip_tags(model)}; downloaded once, then read from the Hugging Face cache) or to a "
            f"local weights file (an open_clip checkpoint or state dict), {_OPT_IN}"
        )
    return pretrained


def _clip_tags(model: str) -> str:
    """The tags open_clip knows for `model`, so the error that needs one also offers them."""
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(model)
    return ", ".join(tags) if tags else "open_clip.list_pretrained() lists the known tags"


def _vit_encoder(model: str, pretrained: str | None, device: torch.device) -> tuple[ImageEncoder, str]:
    """Build a transformers image encoder and return it with the weights it holds.

    The pooled output is used only when the checkpoint actually contains pooler weights; otherwise
    transformers would initialise the pooler randomly, so the CLS token state is used instead. Any other
    parameter missing from the checkpoint would be random too, so that is refused.
    """
    random_init = _vit_random_opt_in(pretrained)
    if not random_init:
        _require_vit_weight_files(model)
    processor, vit, missing = _load_vit(model, random_init)
    unexplained = [key for key in missing if "pooler" not in key.split(".")]
    if unexplained:
        raise ValueError(
            f"the weights of features.image_model {model!r} leave {len(unexplained)} parameters of "
            f"{type(vit).__name__} uninitialised (e.g. {unexplained[0]!r}), which transformers fills with random "
            f"values; point features.image_model at a checkpoint of this architecture, {_OPT_IN}"
        )
    vit.to(device).eval()
    pooler_missing = bool(missing)  # only pooler keys can be left here

    def encode(batch: list[Any]) -> torch.Tensor:
        pixels = processor(images=batch, return_tensors="pt")["pixel_values"].to(device)  # (batch, 3, H, W)
        outputs = vit(pixel_values=pixels)
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is not None and not pooler_missing:
            return pooled.cpu()  # (batch, hidden)
        return outputs.last_hidden_state[:, 0].cpu()  # (batch, hidden), CLS token

    return encode, RANDOM_WEIGHTS_NOTE if random_init else model


def _vit_random_opt_in(pretrained: str | None) -> bool:
    """The vit backend reads weights from features.image_model, so features.image_pretrained may only ask for random."""
    if pretrained and pretrained != RANDOM_WEIGHTS:
        raise ValueError(
            f"features.image_pretrained is {pretrained!r}, but the vit backend reads its weights from "
            f"features.image_model; leave features.image_pretrained empty, {_OPT_IN}"
        )
    return pretrained == RANDOM_WEIGHTS


def _require_vit_weight_files(model: str) -> None:
    """A local folder holding only a config would otherwise fail deep in transformers or load nothing."""
    from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

    folder = Path(model)
    names = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
    if folder.is_dir() and not any((folder / name).is_file() for name in names):
        raise ValueError(
            f"features.image_model {model!r} is a folder without weights (none of {', '.join(names)}), and "
            f"features.image_pretrained does not opt in to random weights. Set features.image_model to a "
            "folder written by save_pretrained (config, weights, preprocessor_config.json) or to a model id "
            f"such as 'google/vit-base-patch16-224-in21k' (read from the Hugging Face cache offline), {_OPT_IN}"
        )


def _load_vit(model: str, random_init: bool) -> tuple[Any, torch.nn.Module, list[str]]:
    """Processor, model and the parameter names the checkpoint lacked (none listed for random weights asked for)."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel  # heavy import, only when encoding

    try:
        processor = AutoImageProcessor.from_pretrained(model)
        if random_init:
            return processor, AutoModel.from_config(AutoConfig.from_pretrained(model)), []
        vit, info = AutoModel.from_pretrained(model, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"could not load image model {model!r} (features.image_model): {_one_line(exc)}. Offline, pass a "
            "local folder holding the model, its weights and its preprocessor_config.json."
        ) from exc
    return processor, vit, list(info["missing_keys"])


def _one_line(exc: BaseException) -> str:
    """Library errors span several lines; fold them so the message reads as one log line."""
    return " ".join(str(exc).split()).rstrip(".")


def _probe_dim(encoder: ImageEncoder) -> int:
    """Find the embedding size when no image was readable, so the table still has the right shape."""
    from PIL import Image

    with torch.inference_mode():
        return int(encoder([Image.new("RGB", (32, 32))]).shape[1])
