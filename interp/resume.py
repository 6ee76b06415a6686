"""Exact shortcuts for finishing a forward pass that an intervention has changed.

Two pieces of algebra that patching sweeps (many copies of a batch, each differing at one layer)
use to skip work a plain forward pass would do, without changing the result beyond float rounding:

- **Resume inside a layer.** Patching a head's z (or attn_out, or mlp_out) at layer l leaves the
  layer's query/key/value projections and attention scores unchanged, so the layer is finished
  from the patched attn_out (or mlp_out) instead of being run again.
- **Compute the last layer at the readout position only.** A sequence classifier reads one
  position of the last layer (the [CLS] / `<s>` token at position 0 for every family here), so the
  last layer needs keys and values at every position but a query, attention output, LayerNorm and
  MLP at position 0 alone.

Layer math by family, dropout omitted (subjects are in eval mode):
  post-LN (BERT, RoBERTa, DistilBERT): mid = ln_attn(attn_out + h); out = ln_mlp(mlp(mid) + mid)
  pre-LN (ViT):                        mid = attn_out + h;          out = mid + mlp(ln_mlp(mid)),
                                       with queries/keys/values read from ln_attn(h).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from interp.arch import get_module

READOUT_POS = 0  # every supported classifier head reads position 0 of the last layer


def supported(subject: Any) -> bool:
    """True when the subject is a HuggingFace classifier of a family whose layers we can recompute."""
    return subject.arch.layer_math is not None and type(subject.model).__name__ in subject.arch.model_classes


def _mod(subject: Any, layer: int, path: str) -> nn.Module:
    return get_module(subject.layers[layer], path)


def mlp(subject: Any, layer: int, x: torch.Tensor) -> torch.Tensor:
    """mlp_out from the MLP's input x [..., pos, d_model] (post-LN: resid_mid; pre-LN: its LayerNorm)."""
    for path in subject.arch.mlp_modules:
        x = _mod(subject, layer, path)(x)
    return x


def resid_mid(subject: Any, layer: int, h: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
    """The layer's state after attention, from its input h and attn_out [..., pos, d_model]."""
    p = subject.arch.layer_math
    x = attn_out + h
    return x if p.pre_ln else _mod(subject, layer, p.ln_attn)(x)


def from_mlp_out(subject: Any, layer: int, mid: torch.Tensor, mlp_out: torch.Tensor) -> torch.Tensor:
    """The layer's output from its post-attention state and (patched) mlp_out."""
    p = subject.arch.layer_math
    x = mlp_out + mid
    return x if p.pre_ln else _mod(subject, layer, p.ln_mlp)(x)


def from_attn_out(subject: Any, layer: int, h: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
    """The layer's output from its input h and a (patched) attn_out; shapes broadcast [..., pos, d_model]."""
    p = subject.arch.layer_math
    mid = resid_mid(subject, layer, h, attn_out)
    mlp_in = _mod(subject, layer, p.ln_mlp)(mid) if p.pre_ln else mid
    return from_mlp_out(subject, layer, mid, mlp(subject, layer, mlp_in))


def attn_out_of(subject: Any, layer: int, z: torch.Tensor) -> torch.Tensor:
    """attn_out [..., pos, d_model] from per-head z [..., pos, head, d_head] (the output projection)."""
    return _mod(subject, layer, subject.arch.o_proj)(z.flatten(-2))


def from_z(subject: Any, layer: int, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The layer's output from its input h and (patched) per-head z [..., pos, head, d_head]."""
    return from_attn_out(subject, layer, h, attn_out_of(subject, layer, z))


def from_outputs(subject: Any, layer: int, h: torch.Tensor, z: torch.Tensor, mlp_out: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(resid_mid, output) of a layer whose z and mlp_out are both given: neither its attention nor
    its MLP runs, only the output projection and the residual/LayerNorm algebra."""
    mid = resid_mid(subject, layer, h, attn_out_of(subject, layer, z))
    return mid, from_mlp_out(subject, layer, mid, mlp_out)


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The layer's attention mask [batch, 1, q_pos, k_pos] as additive scores (bool masks converted)."""
    if mask.dim() != 4:
        raise ValueError(f"Expected the [batch, 1, q_pos, k_pos] attention mask a layer receives, got shape "
                         f"{tuple(mask.shape)}; pass the layer kwargs from hooks.layer_inputs.")
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return mask


def _attend(subject: Any, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            attention_mask: torch.Tensor | None, q_rows: slice) -> torch.Tensor:
    """HuggingFace eager attention: q [B, H, q, dh], k, v [B, H, pos, dh] -> z [B, q, H, dh]; the mask's
    query rows `q_rows` are used (a mask broadcast over queries is used as it is)."""
    scaling = getattr(_mod(subject, layer, subject.arch.layer_math.attn), "scaling", q.shape[-1] ** -0.5)
    scores = torch.matmul(q, k.transpose(2, 3)) * scaling  # [B, H, q, pos]
    if attention_mask is not None:
        m = _additive(attention_mask, scores.dtype)
        scores = scores + (m[:, :, q_rows] if m.shape[-2] > 1 else m)
    return torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2)


def head_z(subject: Any, layer: int, head: int, q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor,
           attention_mask: torch.Tensor | None, q_rows: slice = slice(None)) -> torch.Tensor:
    """One head's z [B, q, d_head] when its query, key and value projections read different inputs
    (q_in [B, q, d_model] at positions `q_rows`; k_in, v_in [B, pos, d_model]), the rest of the layer
    as usual. For pre-LN families the inputs are those after the attention LayerNorm."""
    p = subject.arch.layer_math
    dh = subject.d_head
    rows = slice(head * dh, (head + 1) * dh)

    def proj(path: str, x: torch.Tensor) -> torch.Tensor:  # [B, pos, d_model] -> [B, 1, pos, d_head]
        lin = _mod(subject, layer, path)
        bias = lin.bias[rows] if lin.bias is not None else None
        return F.linear(x, lin.weight[rows], bias)[:, None]

    z = _attend(subject, layer, proj(p.q, q_in), proj(p.k, k_in), proj(p.v, v_in), attention_mask, q_rows)
    return z[:, :, 0]


def readout_layer(subject: Any, layer: int, h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Layer `layer` computed at the readout position only: [batch, 1, d_model] from h [batch, pos, d_model].

    Keys and values use every position; the query, attention output and MLP only position 0. Mirrors
    HuggingFace's eager attention (scores * scaling + additive mask, softmax, weighted values).
    """
    p = subject.arch.layer_math
    x = _mod(subject, layer, p.ln_attn)(h) if p.pre_ln else h
    row = slice(READOUT_POS, READOUT_POS + 1)
    z = attention_z(subject, layer, x, attention_mask, row)  # [B, 1, H, dh]
    return from_z(subject, layer, h[:, row], z)


def attention_z(subject: Any, layer: int, x: torch.Tensor, attention_mask: torch.Tensor | None,
                q_rows: slice = slice(None)) -> torch.Tensor:
    """Every head's z [B, q, head, d_head] of the layer from its attention input x [B, pos, d_model]
    (pre-LN: after the attention LayerNorm), queries at positions `q_rows`, keys and values everywhere."""
    p = subject.arch.layer_math
    B, H = x.shape[0], subject.n_heads

    def heads(path: str, xx: torch.Tensor) -> torch.Tensor:  # [B, n, d_model] -> [B, H, n, dh]
        return _mod(subject, layer, path)(xx).view(B, xx.shape[1], H, -1).transpose(1, 2)

    return _attend(subject, layer, heads(p.q, x[:, q_rows]), heads(p.k, x), heads(p.v, x), attention_mask, q_rows)


def finish(subject: Any, start: int, h: torch.Tensor, layer_kwargs: Mapping[str, Any]) -> torch.Tensor:
    """Logits from layer `start`'s input h [batch, pos, d_model] (pos may be 1 once only the readout
    row is left): full layers up to the last, which is computed at the readout position only."""
    L = subject.n_layers
    for layer in subject.layers[start:L - 1]:
        out = layer(h, **layer_kwargs)
        h = out[0] if isinstance(out, tuple) else out
    if start <= L - 1:
        h = readout_layer(subject, L - 1, h, layer_kwargs.get("attention_mask"))
    return subject.arch.head(subject.model, h)
