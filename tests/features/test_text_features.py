from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dhns.features.text import DEFAULT_TEXT_ENCODER, encode_texts, masked_mean, resolve_text_encoder

SENTENCES = [
    "the quick red cat sat on the big blue mat under the green tree",
    "a dog",
    "",
    "the lazy bird flew over the small rug",
    "an cat",
    "the dog ran",
    "big red tree",
    "a small green bird sat",
    "the cat",
]


def _manual_embedding(folder: Path, text: str) -> torch.Tensor:
    """Reference: encode one text alone (no padding at all) and average every token state."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        states = model(**tokenizer(text, return_tensors="pt")).last_hidden_state  # (1, seq, hidden)
    return states[0].mean(dim=0)  # (hidden,)


def test_mean_pooling_excludes_padding(tiny_bert_dir: Path) -> None:
    vectors = encode_texts(SENTENCES, str(tiny_bert_dir), batch_size=len(SENTENCES), show_progress=False)
    assert vectors.shape == (len(SENTENCES), 16)
    assert vectors.dtype == torch.float32
    for index in (1, 2, 4):  # short texts padded up to the longest one in the same batch
        expected = _manual_embedding(tiny_bert_dir, SENTENCES[index])
        torch.testing.assert_close(vectors[index], expected, atol=1e-5, rtol=1e-5)


def test_batch_size_does_not_change_vectors_or_order(tiny_bert_dir: Path) -> None:
    one = encode_texts(SENTENCES, str(tiny_bert_dir), batch_size=1, show_progress=False)
    seven = encode_texts(SENTENCES, str(tiny_bert_dir), batch_size=7, show_progress=False)
    torch.testing.assert_close(one, seven, atol=1e-5, rtol=1e-5)
    for index in (0, 3, 8):  # order restored after the longest-first sort
        torch.testing.assert_close(one[index], _manual_embedding(tiny_bert_dir, SENTENCES[index]), atol=1e-5, rtol=1e-5)
    again = encode_texts(SENTENCES, str(tiny_bert_dir), batch_size=7, show_progress=False)
    assert torch.equal(seven, again)


def test_max_length_truncates(tiny_bert_dir: Path) -> None:
    long_text = SENTENCES[0]
    truncated = encode_texts([long_text], str(tiny_bert_dir), max_length=4, show_progress=False)
    full = encode_texts([long_text], str(tiny_bert_dir), max_length=64, show_progress=False)
    assert not torch.allclose(truncated, full)


def test_empty_input_gives_empty_matrix(tiny_bert_dir: Path) -> None:
    assert encode_texts([], str(tiny_bert_dir), show_progress=False).shape == (0, 16)


def test_masked_mean_ignores_masked_positions() -> None:
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2)
    mask = torch.tensor([[1, 1, 0]])  # (1, 3)
    torch.testing.assert_close(masked_mean(states, mask), torch.tensor([[2.0, 3.0]]))


def test_resolve_passes_other_names_through(tmp_path: Path) -> None:
    assert resolve_text_encoder(str(tmp_path)) == str(tmp_path)
    assert resolve_text_encoder("org/some-model") == "org/some-model"
    assert (Path(resolve_text_encoder(DEFAULT_TEXT_ENCODER)) / "config.json").is_file()


def test_unloadable_encoder_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no-such-org/no-such-model.*local model folder"):
        encode_texts(["x"], "no-such-org/no-such-model", show_progress=False)
    with pytest.raises(ValueError, match="empty_dir"):
        (tmp_path / "empty_dir").mkdir()
        encode_texts(["x"], str(tmp_path / "empty_dir"), show_progress=False)


def test_real_minilm_puts_similar_sentences_closer() -> None:
    texts = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The stock market fell sharply today.",
        "Berlin is the capital of Germany.",
    ]
    vectors = encode_texts(texts, DEFAULT_TEXT_ENCODER)  # default show_progress: bar disabled off a terminal
    assert vectors.shape == (4, 384)
    unit = torch.nn.functional.normalize(vectors, dim=1)
    similarity = unit @ unit.T  # (4, 4) cosine
    assert similarity[0, 1] > similarity[0, 2] + 0.2
    assert similarity[0, 1] > similarity[0, 3] + 0.2
