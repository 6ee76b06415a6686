"""Can two models be compared or distilled? The one check, for Subjects and HuggingFace models alike.

Why one place: KD, cross-model patching, head matching and weight patching all compare logits index by
index and token positions one to one, so they all need the same two facts: the same labels in the same
order, and the same tokens. Label orders are compared by `interp.metrics.check_label_order`.
"""
from __future__ import annotations

from typing import Any

from interp.metrics import check_label_order

__all__ = ["check_compatible"]


def _facts(model: Any, tokenizer: Any) -> tuple[Any, Any, bool]:
    """(config, tokenizer, reads text) of a Subject (has `.arch`) or a HuggingFace model."""
    if hasattr(model, "arch"):  # a Subject: it carries its tokenizer and modality
        return model.config, tokenizer if tokenizer is not None else model.tokenizer, model.arch.modality == "text"
    return model.config, tokenizer, getattr(model.config, "vocab_size", None) is not None


def _family(tokenizer: Any) -> str:
    """Tokenizer class without the fast/slow suffix: BertTokenizerFast and BertTokenizer tokenise alike (and
    interp.native_tokenizer's stands for the class its checkpoint names)."""
    name = getattr(tokenizer, "tokenizer_class", None) or type(tokenizer).__name__
    return name[:-4] if name.endswith("Fast") else name


def check_compatible(teacher: Any, student: Any, teacher_tokenizer: Any = None, student_tokenizer: Any = None) -> None:
    """Raise ValueError unless `teacher` and `student` emit the same labels in the same order and read the same tokens.

    Either argument may be a Subject (its own tokenizer is used) or a HuggingFace model (pass the tokenizers to
    compare them; without them, only the vocabulary sizes are compared). Label names compare case-insensitively
    after `str()` and `strip()` ("Entailment" == " entailment").
    """
    t_cfg, t_tok, t_text = _facts(teacher, teacher_tokenizer)
    s_cfg, s_tok, s_text = _facts(student, student_tokenizer)
    check_label_order(t_cfg.id2label or {}, s_cfg.id2label or {})
    if not (t_text or s_text):
        return
    tv, sv = getattr(t_cfg, "vocab_size", None), getattr(s_cfg, "vocab_size", None)
    if tv != sv:
        raise ValueError(f"vocabulary size mismatch: teacher vocab_size={tv}, student vocab_size={sv}. Teacher and "
                         "student must share a tokenizer: distil with the teacher's.")
    both_subjects = hasattr(teacher, "arch") and hasattr(student, "arch")
    if t_tok is None or s_tok is None:
        if both_subjects:
            raise ValueError("Teacher and student use different tokenizers (one has none): positions and attention "
                             "patterns cannot be compared. Load both with the teacher's tokenizer.")
        return
    if t_tok is s_tok:
        return
    a, b = t_tok.get_vocab(), s_tok.get_vocab()
    if a != b:
        diff = sorted(set(a.items()) ^ set(b.items()))[:5]
        raise ValueError(f"Teacher and student use different tokenizers: vocabularies differ (teacher {len(a)} tokens, "
                         f"student {len(b)}; first differences {diff}). Positions, attention patterns and logits "
                         "cannot be compared: distil with the teacher's tokenizer.")
    if _family(t_tok) != _family(s_tok):
        raise ValueError(f"Teacher and student use different tokenizers: {type(t_tok).__name__} vs "
                         f"{type(s_tok).__name__} (same vocabulary, different tokenisation rules). Use the teacher's.")
