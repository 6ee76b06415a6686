"""How an expanded sweep runs (activation patching, exact edge effects): the default chunk size per
device, and a reduced-precision copy of a subject for sweeps run in bfloat16 / float16.

Chunks. A sweep expands each batch K times (one copy per component) and runs the copies in chunks of
`max_rows` sequences. On CPU, chunks of about CHUNK_TOKENS tokens keep activations under the
allocator's mmap threshold and run about 1.4x faster than one huge expanded batch. On a GPU the opposite
holds: measured on an H200 (torch 2.11 + CUDA 13), MiniLM-shaped model, 256 same-length HANS pairs, the
head sweep took 0.143 s with CHUNK_TOKENS-sized chunks and 0.087 s with one chunk (every copy in one
expanded forward), so there the chunk is sized from free GPU memory and is one chunk whenever it fits.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

CHUNK_TOKENS = 4096  # CPU: tokens per expanded forward (measured, see the module doc)
# CUDA: share of the free GPU memory (torch.cuda.mem_get_info at the start of a sweep) that one expanded
# forward may use; the rest is headroom for the batch's caches and the allocator.
CUDA_MEMORY_SHARE = 0.5


def bytes_per_token(d_model: int, n_heads: int, n_pos: int, dtype: torch.dtype = torch.float32) -> int:
    """Upper estimate of the live activation memory per token of one expanded forward (no autograd):
    the layer input and output, q / k / v, the attention output, the MLP's 4x-wide hidden layer and its
    activation (16 d_model values), plus scores and probabilities (2 n_heads n_pos values)."""
    return (16 * d_model + 2 * n_heads * n_pos) * torch.empty((), dtype=dtype).element_size()


def chunk_rows(device: torch.device | str, n_pos: int, d_model: int, n_heads: int,
               dtype: torch.dtype = torch.float32) -> int:
    """Default sequences per expanded forward on `device` for inputs of `n_pos` positions.

    CPU (and any non-CUDA device): CHUNK_TOKENS // n_pos. CUDA: CUDA_MEMORY_SHARE of the device's free
    memory over `bytes_per_token * n_pos`, so that a sweep runs as one chunk whenever it fits."""
    n_pos = max(1, n_pos)
    dev = torch.device(device)
    if dev.type != "cuda":
        return max(1, CHUNK_TOKENS // n_pos)
    free, _total = torch.cuda.mem_get_info(dev)
    return max(1, int(CUDA_MEMORY_SHARE * free) // (bytes_per_token(d_model, n_heads, n_pos, dtype) * n_pos))


def subject_chunk_rows(subject: Any, n_pos: int) -> int:
    """`chunk_rows` for a Subject: its device, width, heads and parameter dtype."""
    return chunk_rows(subject.device, n_pos, subject.d_model, subject.n_heads, param_dtype(subject))


def param_dtype(subject: Any) -> torch.dtype:
    """The dtype of the subject's (first) parameter: the precision its forward runs in."""
    return next(subject.model.parameters()).dtype


def in_dtype(subject: Any, dtype: torch.dtype | None) -> Any:
    """The subject when `dtype` is None or already its parameters' dtype; else a Subject over a copy of
    its model cast to `dtype` (the caller's model is left untouched), run by the hooks backend (every
    backend gives the same numbers; the copy has no TransformerLens bridge)."""
    if dtype is None or dtype == param_dtype(subject):
        return subject
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype (e.g. torch.bfloat16), not {dtype}")
    model = copy.deepcopy(subject.model).to(dtype)
    return dataclasses.replace(subject, model=model, backend="hooks", bridge=None, _fingerprint=None)
