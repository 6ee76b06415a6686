"""A tiny teacher/student pair whose tokenizer covers the HANS generator's words (explorer tests)."""
from __future__ import annotations

import re

import transformers as T

from interp.organisms import NLI_LABELS, damaged_student


def hans_vocab() -> list[str]:
    from interp.contrast import _categories
    from interp.data.hans_gen import generate_hans

    words = {w for ex in generate_hans(40, seed=0) for s in (ex["premise"], ex["hypothesis"])
             for w in re.findall(r"\w+|[^\w\s]", s.lower())}
    words |= {w.lower() for cat in _categories() for w in cat}
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]


def hans_tokenizer() -> T.BertTokenizer:
    return T.BertTokenizer(vocab={w: i for i, w in enumerate(hans_vocab())})


def tiny_hans_pair(seed: int = 0, scale: float = 3.0, head_scale: float = 30.0):
    """(teacher, student, tokenizer): a random 4-layer BERT over the HANS vocabulary and a student copied
    from its layers 0 and 2 with head 1.1 killed (`interp.organisms.damaged_student`)."""
    tok = hans_tokenizer()
    cfg = T.BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                       vocab_size=len(tok.vocab), num_labels=3, attn_implementation="eager",
                       max_position_embeddings=64, id2label=NLI_LABELS, label2id={v: k for k, v in NLI_LABELS.items()})
    import torch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        teacher = T.BertForSequenceClassification(cfg).eval()
    with torch.no_grad():
        for name, p in teacher.named_parameters():
            if p.dim() > 1:
                p.mul_(head_scale if ("classifier" in name or "pooler" in name) else scale)
    org = damaged_student(teacher, layers=[0, 2], damage={(1, 1): 0.0}, tokenizer=tok)
    return org.teacher, org.student, tok
