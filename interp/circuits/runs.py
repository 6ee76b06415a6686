"""Circuit runs with per-copy component values: the sites a run needs (`_Values`), per-copy mixes of
clean and corrupted values, and the residual stream rebuilt from component outputs through the
LayerNorms (`_chain`, interp.engine).

Post-LN encoders: a receiver reads the residual stream itself (every LayerNorm sits in the stream).
Pre-LN encoders (ViT): the stream is a plain sum of the embedding and component outputs, and a receiver
reads the LayerNorm of it: q/k/v read `ln_attn(resid_pre)`, the MLP `ln_mlp(resid_mid)`
(`receiver_view`); the classifier's input is the stream (its final LayerNorm belongs to the head)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from interp import engine
from interp.arch import get_module
from interp.circuits.graph import _check_arch
from interp.contrast import metric_values
from interp.engine import first_output, installed, layer_inputs
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


def _mix_z(on: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per copy and head: a where on else b. on [K, head]; a, b [B, pos, head, d_head] -> [K*B, ...]."""
    K = on.shape[0]
    out = torch.where(on[:, None, None, :, None], a[None], b[None])  # [K, B, pos, head, d_head]
    return out.reshape(K * a.shape[0], *a.shape[1:])


def _mix(on: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per copy: a where on else b. on [K]; a, b [B, pos, d] -> [K*B, pos, d]."""
    out = torch.where(on[:, None, None, None], a[None], b[None])
    return out.reshape(on.shape[0] * a.shape[0], *a.shape[1:])


def _chain(subject: Any, h: torch.Tensor, start: int, stop: int, z_vals: Any, mlp_vals: Any, mid_at_stop: bool = False
           ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """The residual stream through layers start..stop-1 when each one's z and mlp_out are given
    (z_vals / mlp_vals: lists or dicts indexed by layer, [rows, ...]) and h [rows, pos, d] enters
    layer `start`.

    Returns pres (pres[l]: input of layer l, start <= l <= stop) and mids (mids[l]: the MLP input
    resid_mid of layer l; with `mid_at_stop` also of layer `stop`, from z_vals[stop]). Attention and
    MLPs never run, only output projections and the residual/LayerNorm algebra (interp.resume), which
    gives what a forward pass with those z and mlp_out written would.
    """
    pres, mids = {start: h}, {}
    for l in range(start, stop):
        mids[l], h = engine.from_outputs(subject, l, h, z_vals[l], mlp_vals[l])
        pres[l + 1] = h
    if mid_at_stop:
        mids[stop] = engine.resid_mid(subject, stop, h, engine.attn_out_of(subject, stop, z_vals[stop]))
    return pres, mids


def _receiver_inputs(subject: Any, layer: int, embed: torch.Tensor, z_vals: list[torch.Tensor],
                     mlp_vals: list[torch.Tensor], need_mid: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inputs of layer `layer` (resid_pre) and of its MLP (resid_mid) when the z / mlp_out of every
    layer <= `layer` are set to the given expanded tensors [K*B, ...] (LayerNorms recomputed)."""
    need_mid = need_mid and layer < subject.n_layers
    pres, mids = _chain(subject, embed, 0, layer, z_vals, mlp_vals, mid_at_stop=need_mid)
    return pres[layer], mids.get(layer)


def _run_layer_with_receivers(subject: Any, layer: int, kwargs: dict, q_in: torch.Tensor, k_in: torch.Tensor,
                              v_in: torch.Tensor, mlp_in: torch.Tensor | None, h: torch.Tensor,
                              reads: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Run one layer from h where head j's q/k/v are projected from q_in/k_in/v_in [n, pos, head, d]
    (per-head residual streams) and the MLP reads mlp_in [n, pos, d] (None: its own input); returns the
    `reads` and the layer output as "_out". Pre-LN: the inputs are streams and go through the layer's
    LayerNorms first (`receiver_view`), as the receivers read them."""
    qn, kn, vn, mn = _check_arch(subject)
    q_in, k_in, v_in = (receiver_view(subject, layer, x, "pre") for x in (q_in, k_in, v_in))  # LN over d
    if mlp_in is not None:
        mlp_in = receiver_view(subject, layer, mlp_in, "mid")
    blk = subject.layers[layer]
    H = subject.n_heads
    handles = []

    def proj_hook(x_in: torch.Tensor):
        def hook(module, args, output):
            W = module.weight.view(H, -1, module.weight.shape[1])           # [head, d_head, d]
            new = torch.einsum("nphd,hed->nphe", x_in, W)                  # [n, pos, head, d_head]
            if module.bias is not None:
                new = new + module.bias.view(H, -1)
            return new.reshape(output.shape)
        return hook

    def mlp_hook(module, args):
        return (mlp_in,) + tuple(args[1:])

    cache: dict[str, torch.Tensor] = {}
    try:
        for name, x in ((qn, q_in), (kn, k_in), (vn, v_in)):
            handles.append(get_module(blk, name).register_forward_hook(proj_hook(x)))
        if mlp_in is not None:
            handles.append(get_module(blk, mn).register_forward_pre_hook(mlp_hook))
        with installed(subject, reads, {}, cache):
            cache["_out"] = first_output(blk(h, **kwargs))
    finally:
        for hd in handles:
            hd.remove()
    return cache

