"""`python -m dhns.gpu_suite.tiny_bert FOLDER`: a seeded two-layer BERT and its tokenizer, saved to FOLDER.

Why: the features stage needs a text encoder, and the device machine has no network to fetch one; this one
is made on the spot in a child, so the suite itself never imports transformers.
"""

from __future__ import annotations

import sys

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a an cat dog bird sat ran flew on over under mat rug tree red blue green big small quick lazy").split()


def save_tiny_bert(folder: str) -> None:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(folder)
    BertTokenizer(vocab={word: i for i, word in enumerate(VOCAB)}).save_pretrained(folder)


if __name__ == "__main__":
    save_tiny_bert(sys.argv[1])
