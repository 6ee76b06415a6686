"""Exact edge patching by batched receiver recomputation.

Patching edge s -> r gives receiver r the input x_r(s) (interp.circuits.inputs) and leaves everything
else at its base value, so r's layer is finished from base values plus one change:
Receiver inputs are what the receivers read (pre-LN: the LayerNorm of the stream; interp.circuits.runs).
- a head receiver (q, k or v of head h): only head h's z changes. It is recomputed from the new
  projection and the base projections of the other two, and attn_out = base attn_out +
  (z_h' - z_h) @ W_O[h]: per copy one head's projection and output rows, never the full layer's;
- the MLP receiver: the MLP runs on the new input, its output joins the base resid_mid;
- the classifier input: the classifier head alone.
The later layers then run in full and the last at the readout position only (interp.resume); when the
receiver is in the last layer, only its readout row is computed (keys and values keep every position).

Many (sender, receiver) copies are stacked along the batch (copy c of pair i is row c * B + i) in
chunks of about `max_rows` sequences, which keeps activations in cache on CPU; a layer's new q/k/v
projections are computed once for all its senders and heads, its base projections once per batch.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from interp import engine
from interp.arch import get_linear, get_module
from interp.circuits.graph import _check_arch, _parse_node
from interp.circuits.inputs import head_out_weights
from interp.circuits.runs import _Values, receiver_view
from interp.contrast import metric_values
from interp.engine import expand_kwargs


@dataclass
class LayerBase:
    """Base-run quantities of one layer, computed once per batch."""

    pre: torch.Tensor                 # layer input [B, pos, d]
    attn: torch.Tensor                # attn_out [B, pos, d]
    mid: torch.Tensor                 # MLP input (resid_mid) [B, pos, d]
    qkv: dict[str, torch.Tensor]      # per kind [B, head, pos, d_head]
    z: torch.Tensor                   # [B, pos, head, d_head]
    w_out: torch.Tensor               # output projection by head [head, d_head, d]
    rows: slice                       # query rows that matter: the readout row in the last layer


def layer_base(subject: Any, base: _Values, layer: int) -> LayerBase:
    qn, kn, vn, _ = _check_arch(subject)
    pre = base.embed if layer == 0 else base.resid[layer - 1]
    B, n, H = pre.shape[0], pre.shape[1], subject.n_heads
    x = receiver_view(subject, layer, pre, "pre")  # what q/k/v read (pre-LN: the LayerNorm of the stream)
    qkv = {kind: get_module(subject.layers[layer], name)(x).view(B, n, H, -1).transpose(1, 2)
           for kind, name in zip("qkv", (qn, kn, vn))}
    last = layer == subject.n_layers - 1
    rows = slice(engine.READOUT_POS, engine.READOUT_POS + 1) if last else slice(None)
    return LayerBase(pre, engine.attn_out_of(subject, layer, base.z[layer]), base.mid[layer], qkv, base.z[layer],
                     head_out_weights(subject, layer), rows)


def _finish(subject: Any, layer: int, out: torch.Tensor, kwargs: dict, copies: int) -> torch.Tensor:
    """Logits from layer `layer`'s output [copies * B, rows, d]."""
    if layer == subject.n_layers - 1:
        return subject.arch.head(subject.model, out)
    return engine.finish(subject, layer + 1, out, expand_kwargs(kwargs, copies))


def _sums(metric: Any, logits: torch.Tensor, copies: int) -> torch.Tensor:
    """Metric summed over the pairs of each copy: [copies] float64."""
    return metric_values(metric, logits).double().view(copies, -1).sum(1)


def head_receivers(subject: Any, metric: Any, base: _Values, lb: LayerBase, layer: int, kind: str, xs: torch.Tensor,
                   copies: list[tuple[int, int]], max_rows: int, tick: Callable[[int], None] | None = None
                   ) -> torch.Tensor:
    """Metric sums [len(copies)] float64 when head h's `kind` input alone reads xs[s] [S, B, pos, d], for each
    copy (s, h)."""
    p = subject.arch.layer_math
    B = xs.shape[1]
    rows = lb.rows if kind == "q" else slice(None)
    lin = get_linear(subject.layers[layer], getattr(p, kind))
    new_all = F.linear(xs[:, :, rows], lin.weight, lin.bias)                 # [S, B, n, head * d_head]
    new_all = new_all.view(*new_all.shape[:-1], subject.n_heads, -1)          # [S, B, n, head, d_head]
    mask = base.kwargs.get("attention_mask")
    step = max(1, max_rows // B)
    out = []
    for a in range(0, len(copies), step):
        chunk = copies[a:a + step]
        s_idx = torch.tensor([c[0] for c in chunk], device=xs.device)
        h_idx = torch.tensor([c[1] for c in chunk], device=xs.device)
        c = len(chunk)
        new = new_all[s_idx, :, :, h_idx].transpose(0, 1)                     # [B, c, n, d_head]
        qkv = {k: v[:, h_idx] for k, v in lb.qkv.items()}                     # [B, c, pos, d_head]
        qkv["q"] = qkv["q"][:, :, lb.rows]
        qkv[kind] = new
        z = engine.attend(subject, layer, qkv["q"], qkv["k"], qkv["v"], mask, lb.rows)  # [B, q, c, d_head]
        dz = z - lb.z[:, lb.rows][:, :, h_idx]
        d_attn = torch.einsum("bqce,ced->cbqd", dz, lb.w_out[h_idx])          # [c, B, q, d]
        h_out = engine.from_attn_out(subject, layer, lb.pre[:, lb.rows], lb.attn[:, lb.rows] + d_attn)
        out.append(_sums(metric, _finish(subject, layer, h_out.flatten(0, 1), base.kwargs, c), c))
        if tick:
            tick(c)
    return torch.cat(out)


def mlp_receivers(subject: Any, metric: Any, base: _Values, lb: LayerBase, layer: int, xs: torch.Tensor,
                  max_rows: int, tick: Callable[[int], None] | None = None) -> torch.Tensor:
    """Metric sums [S] float64 when the layer's MLP alone reads xs[s] [S, B, pos, d]."""
    step = max(1, max_rows // xs.shape[1])
    out = []
    for a in range(0, xs.shape[0], step):
        x = xs[a:a + step, :, lb.rows]                                         # [c, B, q, d]
        h_out = engine.from_mlp_out(subject, layer, lb.mid[:, lb.rows], engine.mlp(subject, layer, x))
        out.append(_sums(metric, _finish(subject, layer, h_out.flatten(0, 1), base.kwargs, x.shape[0]), x.shape[0]))
        if tick:
            tick(x.shape[0])
    return torch.cat(out)


def logit_receivers(subject: Any, metric: Any, xs: torch.Tensor, tick: Callable[[int], None] | None = None
                    ) -> torch.Tensor:
    """Metric sums [S] float64 when the classifier alone reads xs[s] [S, B, pos, d]."""
    row = slice(engine.READOUT_POS, engine.READOUT_POS + 1)
    out = _sums(metric, subject.arch.head(subject.model, xs[:, :, row].flatten(0, 1)), xs.shape[0])
    if tick:
        tick(xs.shape[0])
    return out


def _exact_edge(subject: Any, metric: Any, base: _Values, layer: int, receiver: str, xs: torch.Tensor,
                max_rows: int = 4096) -> list[float]:
    """Metric sums when `receiver` (of layer `layer`; `logits.in` for the classifier) alone reads each of the
    inputs xs [k, B, pos, d]."""
    if receiver == "logits.in":
        return logit_receivers(subject, metric, xs).tolist()
    node, kind = receiver.split(".")
    lb = layer_base(subject, base, layer)
    if kind == "in":
        return mlp_receivers(subject, metric, base, lb, layer, xs, max_rows).tolist()
    h = _parse_node(node)[2]
    return head_receivers(subject, metric, base, lb, layer, kind, xs, [(s, h) for s in range(xs.shape[0])],
                          max_rows).tolist()
