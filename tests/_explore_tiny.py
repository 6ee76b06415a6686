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


def systematic_pairs(tokenizer, n: int = 24, seed: int = 1) -> tuple[list[dict], list[dict]]:
    """HANS examples and the same with every hypothesis token replaced by "the": on a random model this
    shifts the margin the same way on every pair, a significant gap that gives both models a circuit."""
    from interp.explore.data import pick_examples

    clean = pick_examples(n, seed=seed)
    corrupt = [dict(e, hypothesis=" ".join(["the"] * len(tokenizer.tokenize(e["hypothesis"])))) for e in clean]
    return clean, corrupt


def build_results(tmp, teacher=None, student=None):
    """`interp compare`'s results folder of the tiny pair under tmp/compare."""
    import warnings

    from interp.comparison_run import run_comparison
    from interp.data.hans_gen import generate_hans
    from interp.subject import load_subject

    if teacher is None:
        t, s, tok = tiny_hans_pair()
        teacher, student = load_subject(t, tokenizer=tok, name="teacher"), load_subject(s, tokenizer=tok, name="student")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_comparison(teacher, student, generate_hans(4, seed=0), tmp / "compare", n=12, progress=False)
    return tmp / "compare"


def build_explorer(tmp, with_results: bool = True):
    """(Explorer, results dir or None) of the tiny pair; with `with_results`, `interp compare` runs first."""
    import warnings

    from interp.explore import explore
    from interp.subject import load_subject

    t, s, tok = tiny_hans_pair()
    teacher, student = load_subject(t, tokenizer=tok, name="teacher"), load_subject(s, tokenizer=tok, name="student")
    results = build_results(tmp, teacher, student) if with_results else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view = explore(teacher, student, out=tmp / "explorer.html", results=results, n_examples=12,
                       pairs=systematic_pairs(tok))
    return view, results
