"""Tokenise once, pad per batch, predict: the data side of training and evaluation.

:func:`encode` tokenises examples once up front (no padding); :func:`iter_batches` pads each batch to its
longest sequence (dynamic padding); :func:`predict_logits` gives eval-mode logits for a list of examples
(length-sorted batches, returned in the original order).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from interp.train.images import EncodedImages, encode_images, iter_image_batches


@dataclass
class Encoded:
    """Tokenised examples (unpadded id lists) and integer labels (``-1`` when absent)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: torch.Tensor
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


def _label_ids(examples: Sequence[dict], label2id: dict[str, int] | None) -> torch.Tensor:
    out = []
    for ex in examples:
        y = ex.get("label")
        if y is None:
            out.append(-1)
        elif isinstance(y, (int, np.integer)):
            out.append(int(y))
        else:
            if not label2id or y not in label2id:
                raise KeyError(f"label {y!r} not in the model's label2id {label2id}; set config.id2label/label2id "
                               "to the data's label names")
            out.append(int(label2id[y]))
    return torch.tensor(out, dtype=torch.long)


def encode(tokenizer, examples: Sequence[dict], max_length: int = 48,
           label2id: dict[str, int] | None = None, with_labels: bool = True) -> Encoded | EncodedImages:
    """Tokenise ``premise``/``hypothesis`` pairs (or ``text``) once, truncated to ``max_length``, unpadded.

    String labels are mapped with ``label2id``; ``with_labels=False`` ignores labels (all ``-1``).
    Image examples (``pixel_values``) are stacked instead (``interp.train.images``; no tokenizer needed)."""
    if examples and "pixel_values" in examples[0]:
        return encode_images(examples, _label_ids(examples, label2id) if with_labels
                             else torch.full((len(examples),), -1, dtype=torch.long))
    if examples and "premise" in examples[0]:
        enc = tokenizer([e["premise"] for e in examples], [e["hypothesis"] for e in examples],
                        truncation=True, max_length=max_length, padding=False)
    else:
        enc = tokenizer([e["text"] for e in examples], truncation=True, max_length=max_length, padding=False)
    tt = enc.get("token_type_ids")
    labels = _label_ids(examples, label2id) if with_labels else torch.full((len(examples),), -1, dtype=torch.long)
    return Encoded(list(enc["input_ids"]), list(tt) if tt is not None else None, labels,
                   pad_id=tokenizer.pad_token_id or 0)


def _collate(enc: Encoded, idx: Sequence[int]) -> dict[str, torch.Tensor]:
    n = max(len(enc.input_ids[i]) for i in idx)
    ids = torch.full((len(idx), n), enc.pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), n), dtype=torch.long)
    tt = torch.zeros((len(idx), n), dtype=torch.long) if enc.token_type_ids is not None else None
    for r, i in enumerate(idx):
        seq = enc.input_ids[i]
        ids[r, :len(seq)] = torch.tensor(seq)
        mask[r, :len(seq)] = 1
        if tt is not None and enc.token_type_ids is not None:
            tt[r, :len(seq)] = torch.tensor(enc.token_type_ids[i])
    batch = {"input_ids": ids, "attention_mask": mask}
    if tt is not None:
        batch["token_type_ids"] = tt
    return batch


def iter_batches(enc: Encoded | EncodedImages, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                 by_length: bool = False) -> Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Yield ``(indices, padded batch)``. ``by_length`` sorts by length (inference only: less padding)."""
    if isinstance(enc, EncodedImages):  # images: one size, no padding
        yield from iter_image_batches(enc, batch_size, shuffle, generator)
        return
    n = len(enc)
    if shuffle:
        order = torch.randperm(n, generator=generator).tolist()
    elif by_length:
        order = sorted(range(n), key=lambda i: len(enc.input_ids[i]))
    else:
        order = list(range(n))
    for s in range(0, n, batch_size):
        idx = order[s:s + batch_size]
        yield torch.tensor(idx), _collate(enc, idx)


@torch.no_grad()
def predict_logits(model, tokenizer, examples: Sequence[dict] | Encoded | EncodedImages, batch_size: int = 128,
                   max_length: int = 48) -> torch.Tensor:
    """Eval-mode float32 logits ``[n, n_labels]`` in the examples' order."""
    enc = examples if isinstance(examples, (Encoded, EncodedImages)) else \
        encode(tokenizer, examples, max_length, with_labels=False)
    was_training = model.training
    model.eval()
    out = None
    for idx, batch in iter_batches(enc, batch_size, by_length=True):
        logits = model(**batch).logits.float()
        if out is None:
            out = torch.empty((len(enc), logits.shape[-1]), dtype=torch.float32)
        out[idx] = logits
    if was_training:
        model.train()
    if out is None:
        return torch.empty((0, model.config.num_labels))
    return out
