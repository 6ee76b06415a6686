"""Loading models: HF checkpoint folders (local files only, never the hub), tokenizer checks, fingerprints.

Shared by `interp.subject` and the backends, so that neither imports the other to load a model.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

NLI_LABELS = ("entailment", "neutral", "contradiction")
IMAGE_MODEL_TYPES = ("vit", "resnet", "lenet")  # image classifiers: no tokenizer


def model_fingerprint(model: nn.Module) -> str:
    """sha256 over parameter names, shapes and bytes (first 16 hex digits): identifies the exact weights."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(p.detach().cpu().contiguous().numpy().reshape(-1).view(np.uint8))  # the bytes, not a copy of them
    return h.hexdigest()[:16]


def check_tokenizer(model: nn.Module, tokenizer: Any) -> None:
    """Refuse a tokenizer whose vocabulary does not fit the model's embedding matrix."""
    cfg = model.config
    n_vocab = getattr(cfg, "vocab_size", None)
    if tokenizer is None or n_vocab is None:
        return
    n_tok = len(tokenizer)
    if n_tok > n_vocab or n_vocab - n_tok > 128:
        raise ValueError(
            f"Tokenizer vocabulary ({n_tok} tokens) does not match the model's ({n_vocab}): this is the wrong "
            "tokenizer for this model. Load the tokenizer saved with the checkpoint.")
    pad_model, pad_tok = getattr(cfg, "pad_token_id", None), getattr(tokenizer, "pad_token_id", None)
    if pad_model is not None and pad_tok is not None and pad_model != pad_tok:
        raise ValueError(f"Tokenizer pad id {pad_tok} differs from the model's pad_token_id {pad_model}: "
                         "wrong tokenizer for this model.")


def load_folder(path: Path, num_labels: int | None = None, native: bool = False) -> tuple[nn.Module, Any]:
    """(model, tokenizer or None) from a HF checkpoint folder, offline, with eager attention; see load_subject.
    With `native`, a trained BERT classifier that `interp.native_bert` covers loads without transformers'
    modelling code (same weights, modules and logits; 2-3 s less import on a 2-core CPU), and its tokenizer,
    where `interp.native_tokenizer` covers it, without transformers (1.2 s less)."""
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a HuggingFace checkpoint folder (no config.json).")
    from interp import native_bert, native_tokenizer

    model = native_bert.load(path, num_labels) if native else None
    if model is not None:
        tok = native_tokenizer.load(path)
        return model, tok if tok is not None else _load_tokenizer(path)
    import transformers as T

    from interp import lenet  # noqa: F401  (registers the LeNet model type with the Auto classes)

    config = T.AutoConfig.from_pretrained(path, local_files_only=True)
    kwargs: dict[str, Any] = {"attn_implementation": "eager", "local_files_only": True}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    elif not any(a.endswith(("ForSequenceClassification", "ForImageClassification"))
                 for a in (config.architectures or [])):
        # bare encoder: a new, untrained NLI head in the order of interp.data.nli_gen.LABELS
        kwargs.update(num_labels=3, id2label=dict(enumerate(NLI_LABELS)),
                      label2id={l: i for i, l in enumerate(NLI_LABELS)})
    image = config.model_type in IMAGE_MODEL_TYPES
    auto = T.AutoModelForImageClassification if image else T.AutoModelForSequenceClassification
    with torch.random.fork_rng():  # a new head is initialised from a fixed seed: the same Subject every load
        torch.manual_seed(0)
        model = auto.from_pretrained(path, **kwargs)
    return model, (None if image else _load_tokenizer(path))


def _load_tokenizer(path: Path) -> Any:
    """The tokenizer saved with a checkpoint, or None when the folder has none."""
    if not ((path / "tokenizer_config.json").exists() or (path / "vocab.txt").exists()):
        return None
    import transformers as T

    return T.AutoTokenizer.from_pretrained(path, local_files_only=True)
