"""Tiny BERT models and tokenizer for the train/ tests (no downloads)."""
from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

LABELS3 = ("entailment", "neutral", "contradiction")
WORDS = ["the", "a", "doctor", "lawyer", "artist", "saw", "helped", "called", "near", "by", "and", "who",
         "was", "is", "not", "cat", "dog", "ran", "slept", "happy"]


def tiny_tokenizer() -> BertTokenizer:
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)}
    return BertTokenizer(vocab=vocab)


def tiny_bert(layers: int = 4, hidden: int = 32, heads: int = 4, seed: int = 0, labels=LABELS3,
              vocab_size: int | None = None) -> BertForSequenceClassification:
    cfg = BertConfig(vocab_size=vocab_size or (5 + len(WORDS)), hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=64,
                     num_labels=len(labels), id2label=dict(enumerate(labels)),
                     label2id={l: i for i, l in enumerate(labels)}, attn_implementation="eager")
    torch.manual_seed(seed)
    return BertForSequenceClassification(cfg).eval()

