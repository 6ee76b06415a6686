"""Circuit runs: the sites a run needs (`_Values`) and what a receiver reads of the stream (`receiver_view`).
The run itself is in interp.circuits.evaluation (the recomputed heads' attention from their receivers'
streams) and interp.circuits.deltas (the residual stream rebuilt from component outputs through the
LayerNorms, interp.engine).

Post-LN encoders: a receiver reads the residual stream itself (every LayerNorm sits in the stream).
Pre-LN encoders (ViT): the stream is a plain sum of the embedding and component outputs, and a receiver
reads the LayerNorm of it: q/k/v read `ln_attn(resid_pre)`, the MLP `ln_mlp(resid_mid)`
(`receiver_view`); the classifier's input is the stream (its final LayerNorm belongs to the head)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from interp import engine
from interp.circuits.graph import _check_arch
from interp.contrast import metric_values
from interp.engine import layer_inputs
from interp.patching import check_run


@dataclass
class _Values:
    embed: torch.Tensor                  # [B, pos, d]
    z: list[torch.Tensor]                # per layer [B, pos, head, d_head]
    mlp: list[torch.Tensor]              # per layer [B, pos, d]
    resid: list[torch.Tensor]            # per layer resid_post [B, pos, d]
    mid: list[torch.Tensor]              # per layer resid_mid (the MLP input) [B, pos, d]
    kwargs: dict
    metric_sum: float
    metric: torch.Tensor | None = None   # per example [B], float64


def _values(subject: Any, metric: Any, batch: dict, which: str = "base") -> _Values:
    """Every site a circuit run needs, for one input batch (`which` names it in NaN errors)."""
    L = subject.n_layers
    pre_ln = _check_arch_math(subject).pre_ln
    mid_kind = "hook_attn_out" if pre_ln else "hook_resid_mid"  # pre-LN: resid_mid = resid_pre + attn_out
    reads = [f"blocks.{l}.{k}" for l in range(L) for k in ("attn.hook_z", "hook_mlp_out", "hook_resid_post", mid_kind)]
    logits, c = subject.run(batch, read=reads)
    check_run(subject, logits, c, which)
    embed, kw = layer_inputs(subject, batch)
    m = metric_values(metric, logits).double()  # [B]
    resid = [c[f"blocks.{l}.hook_resid_post"] for l in range(L)]
    if pre_ln:  # the same addition the layer does (attn_out + residual)
        mid = [c[f"blocks.{l}.hook_attn_out"] + (embed if l == 0 else resid[l - 1]) for l in range(L)]
    else:
        mid = [c[f"blocks.{l}.hook_resid_mid"] for l in range(L)]
    return _Values(embed, [c[f"blocks.{l}.attn.hook_z"] for l in range(L)],
                   [c[f"blocks.{l}.hook_mlp_out"] for l in range(L)], resid, mid, kw, float(m.sum()), m.cpu())


def _check_arch_math(subject: Any) -> Any:
    _check_arch(subject)
    return subject.arch.layer_math


def receiver_view(subject: Any, layer: int, x: torch.Tensor, where: str) -> torch.Tensor:
    """What the receivers of layer `layer` read from the residual stream x [..., pos, d]: `where` "pre" (the
    heads' q/k/v) or "mid" (the MLP). Post-LN: x itself; pre-LN: its attention / MLP LayerNorm. Layer
    n_layers ("pre") is the classifier, which reads the stream."""
    p = subject.arch.layer_math
    if not p.pre_ln or layer >= subject.n_layers:
        return x
    return engine.layer_module(subject, layer, p.ln_attn if where == "pre" else p.ln_mlp)(x)
