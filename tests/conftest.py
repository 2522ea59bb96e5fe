"""Fixtures shared by every test folder: tiny encoders saved to disk and tiny images.

Tiny randomly initialised models are saved to a temporary folder and loaded back through the same code
path users take with real model names, because no real weights except MiniLM exist offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a an cat dog bird sat ran flew on over under mat rug tree red blue green big small quick lazy"
).split()


def _write_image(path: Path, seed: int, size: tuple[int, int] = (32, 32)) -> Path:
    """Write a small random RGB image; the suffix picks the format."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)  # (H, W, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def write_image() -> Callable[..., Path]:
    """Helpers are handed out as fixtures: two test folders' conftest modules would clash if imported by name."""
    return _write_image


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    BertTokenizer(vocab={word: i for i, word in enumerate(TINY_VOCAB)}).save_pretrained(folder)
    return folder
