"""Normalise user data into examples and batches of model inputs.

An example is a dict: text pairs carry `premise` and `hypothesis` (NLI, HANS), single texts carry
`text`, images carry `pixel_values` ([3, H, W]). Every example has a string `id`, so that results from
two models can be aligned example by example.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch


def as_examples(data: Iterable[Any]) -> list[dict]:
    """Accept dicts, (premise, hypothesis) tuples, strings or image tensors; give ids where missing."""
    if isinstance(data, torch.Tensor):
        data = list(data)
    examples = []
    for i, item in enumerate(data):
        if isinstance(item, dict):
            ex = dict(item)
        elif isinstance(item, str):
            ex = {"text": item}
        elif isinstance(item, torch.Tensor):
            ex = {"pixel_values": item}
        elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(s, str) for s in item):
            ex = {"premise": item[0], "hypothesis": item[1]}
        else:
            raise TypeError(f"Example {i} has type {type(item).__name__}; give dicts with 'premise'/'hypothesis', "
                            "'text' or 'pixel_values', (premise, hypothesis) tuples, strings or image tensors.")
        ex["id"] = str(ex.get("id", f"ex{i}"))
        examples.append(ex)
    if not examples:
        raise ValueError("No examples: the data is empty. Pass at least one example.")
    ids = [ex["id"] for ex in examples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"Duplicate example id {dup!r}: ids must be unique so that models can be aligned.")
    return examples


def tokenize(tokenizer: Any, examples: Sequence[dict], max_length: int = 128) -> dict[str, torch.Tensor]:
    """Tokenise text pairs (with token_type_ids) or single texts, padded to the longest in the batch."""
    first = examples[0]
    if "pixel_values" in first:
        return {"pixel_values": torch.stack([torch.as_tensor(ex["pixel_values"]) for ex in examples])}
    if tokenizer is None:
        raise ValueError("This Subject has no tokenizer: pass tokenizer= to load_subject to run text.")
    if "premise" in first:
        enc = tokenizer([ex["premise"] for ex in examples], [ex["hypothesis"] for ex in examples],
                        padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    elif "text" in first:
        enc = tokenizer([ex["text"] for ex in examples], padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt")
    else:
        raise KeyError(f"Example {first['id']!r} has neither 'premise'/'hypothesis', 'text' nor 'pixel_values'.")
    return dict(enc)


def batches(examples: Sequence[dict], batch_size: int) -> Iterator[tuple[int, Sequence[dict]]]:
    """(start index, slice) over the examples."""
    for start in range(0, len(examples), batch_size):
        yield start, examples[start:start + batch_size]
