"""Reference: interp.circuits' edge scoring as it was before the batched rewrite (commit 1dbf8b3), kept
verbatim for the equality tests (tests/test_circuit_edges.py) and the old-vs-new benchmark
(benchmarks/circuits.py). One sender layer at a time, one receiver at a time; do not optimise."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from interp import engine, resume
from interp.arch import get_module
from interp.backends.hooks import expand_kwargs
from interp.circuits import (
    _check_arch,
    _parse_node,
    _Values,
    _values,
    all_edges,
    receivers_at,
    senders_before,
)
from interp.circuits.runs import receiver_view
from interp.contrast import Contrast, metric_values
from interp.engine import first_output, installed
from interp.progress import bar as progress_bar


# the per-copy mixes and the residual chain the old code built receiver inputs with (interp.circuits.runs
# before the delta rewrite of interp.circuits.evaluation), verbatim
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

def old_sender_paths(subject: Any, base: _Values, src: _Values, layer: int | None
                  ) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor | None]]:
    """For the senders of one layer (or the input, layer None): the input of every later layer and MLP
    with only that sender at its source value and all other components frozen at base values.
    Returns sender names and, per receiver layer l, pre [K*B, pos, d] and mid [K*B, pos, d]."""
    L, H = subject.n_layers, subject.n_heads
    if layer is None:
        names, K, start = ["input"], 1, 0
        h = src.embed
    else:
        names = [f"L{layer}H{h}" for h in range(H)] + [f"L{layer}M"]
        K, start = H + 1, layer
        h = (base.embed if layer == 0 else base.resid[layer - 1]).repeat(K, 1, 1)
    z_vals: dict[int, torch.Tensor] = {}
    mlp_vals: dict[int, torch.Tensor] = {}
    for l in range(start, L):
        zon = torch.zeros(K, H, dtype=torch.bool, device=h.device)
        mon = torch.zeros(K, dtype=torch.bool, device=h.device)
        if layer is not None and l == layer:
            zon[torch.arange(H), torch.arange(H)] = True
            mon[H] = True
        z_vals[l] = _mix_z(zon, src.z[l], base.z[l])
        mlp_vals[l] = _mix(mon, src.mlp[l], base.mlp[l])
    pres, mids = _chain(subject, h, start, L, z_vals, mlp_vals)
    pre = [pres.get(l) for l in range(L + 1)]  # None before `start`
    mid = [mids.get(l) for l in range(L)]
    return names, pre, mid


def old_receiver_grads(subject: Any, metric: Any, base: _Values, batch: dict) -> dict[str, torch.Tensor]:
    """d(sum metric)/d(receiver input) on the base run, per receiver: [B, pos, d]."""
    qn, kn, vn, mn = _check_arch(subject)
    L, H = subject.n_layers, subject.n_heads
    saved: dict[str, torch.Tensor] = {}
    handles = []

    def keep_out(key):
        def hook(module, args, output):
            saved[key] = output
        return hook

    def clone_in(key):
        def hook(module, args):
            x = args[0].clone()
            saved[key] = x
            return (x,) + tuple(args[1:])
        return hook

    try:
        for l, blk in enumerate(subject.layers):
            for name, kind in ((qn, "q"), (kn, "k"), (vn, "v")):
                handles.append(get_module(blk, name).register_forward_hook(keep_out(f"{l}.{kind}")))
            handles.append(get_module(blk, mn).register_forward_pre_hook(clone_in(f"{l}.in")))
        last = f"blocks.{L - 1}.hook_resid_post"
        with torch.enable_grad():
            logits, cache = subject.run(batch, read=[last], write={last: lambda v: v}, grad=True)
            m = metric_values(metric, logits).sum()
            keys = list(saved) + ["final"]
            grads = torch.autograd.grad(m, [saved[k] for k in saved] + [cache[last]], allow_unused=True)
    finally:
        for hd in handles:
            hd.remove()
    g = {k: (v if v is not None else torch.zeros_like(saved.get(k, cache[last]))) for k, v in zip(keys, grads)}
    out: dict[str, torch.Tensor] = {"logits.in": g["final"].detach()}
    for l, blk in enumerate(subject.layers):
        for name, kind in ((qn, "q"), (kn, "k"), (vn, "v")):
            W = get_module(blk, name).weight.view(H, -1, subject.d_model)            # [head, d_head, d]
            go = g[f"{l}.{kind}"].view(*g[f"{l}.{kind}"].shape[:-1], H, -1)          # [B, pos, head, d_head]
            per_head = torch.einsum("bphe,hed->bphd", go, W).detach()                # [B, pos, head, d]
            for h in range(H):
                out[f"L{l}H{h}.{kind}"] = per_head[:, :, h]
        out[f"L{l}M.in"] = g[f"{l}.in"].detach()
    return out



def old_edge_effects(subject: Any, contrast: Contrast, method: str, direction: str, batch_size: int
                  ) -> tuple[dict[str, float], float, float]:
    """Unnormalised effect of every edge (mean metric change, signed like importance) and the endpoint means."""
    L = subject.n_layers
    totals: dict[str, float] = {e: 0.0 for e in all_edges(subject)}
    tot_base = tot_src = 0.0
    bar = progress_bar(total=-(-len(contrast) // batch_size) * (L + 1), desc=f"{method} edge scores {subject.name}")
    for b in contrast.batches(batch_size):
        with torch.no_grad():
            cv = _values(subject, contrast.metric, b.clean, "clean")
            rv = _values(subject, contrast.metric, b.corrupt, "corrupted")
        base, src = (cv, rv) if direction == "noise" else (rv, cv)
        base_batch = b.clean if direction == "noise" else b.corrupt
        tot_base += base.metric_sum
        tot_src += src.metric_sum
        B = base.embed.shape[0]
        grads = old_receiver_grads(subject, contrast.metric, base, base_batch) if method == "atp" else None
        for layer in [None] + list(range(L)):
            with torch.no_grad():
                names, pre, mid = old_sender_paths(subject, base, src, layer)
            K = len(names)
            first = 0 if layer is None else layer
            for rl in range(first, L + 1):
                recv = ["logits.in"] if rl == L else receivers_at(subject, rl)
                if layer is not None and rl == layer:
                    recv = [f"L{rl}M.in"]  # same-layer edges: heads -> MLP only
                for r in recv:
                    if rl == L:
                        x, xbase = pre[L], base.resid[L - 1]
                    elif r.endswith(".in"):
                        x, xbase = mid[rl], base.mid[rl]
                    else:
                        x, xbase = pre[rl], (base.resid[rl - 1] if rl > 0 else base.embed)
                    ss = [s for s in names if s in senders_before(subject, r)]
                    idx = [names.index(s) for s in ss]
                    xs = x.view(K, B, *x.shape[1:])[idx]                               # [k, B, pos, d]
                    if method == "atp":
                        eff = ((xs - xbase[None]).double() * grads[r].double()[None]).sum(dim=(1, 2, 3))
                        for s, e in zip(ss, eff):
                            totals[f"{s}->{r}"] += float(e)
                    else:
                        with torch.no_grad():
                            vals = old_exact_edge(subject, contrast.metric, base, rl, r, xs)
                        for s, v in zip(ss, vals):
                            totals[f"{s}->{r}"] += float(v) - base.metric_sum
            bar.update(1)
    bar.close()
    n = len(contrast)
    m_base, m_src = tot_base / n, tot_src / n
    clean, corrupt = (m_base, m_src) if direction == "noise" else (m_src, m_base)
    sign = -1.0 if direction == "noise" else 1.0
    for e, t in totals.items():
        if not math.isfinite(t):
            raise FloatingPointError(f"{subject.name}: the score of edge {e} is {t}: a NaN or inf in the receiver's "
                                     "input or gradient; check the model's weights.")
    return {e: sign * t / n for e, t in totals.items()}, clean, corrupt


def old_exact_edge(subject: Any, metric: Any, base: _Values, layer: int, receiver: str, xs: torch.Tensor
                ) -> list[float]:
    """Metric sums when `receiver` alone reads each of the inputs xs [k, B, pos, d].

    Only the receiver changes at its layer, so the layer is finished from the base values with that
    one head's z recomputed (its query, key or value projected from the new input; interp.resume.head_z)
    or, for an MLP receiver, the MLP rerun on the new input; at the last layer only the readout row.
    """
    k, B = xs.shape[0], xs.shape[1]
    flat = xs.reshape(k * B, *xs.shape[2:])  # [kB, pos, d]
    if receiver == "logits.in":
        logits = subject.arch.head(subject.model, flat)
    else:
        node, kind = receiver.split(".")
        _, _, h = _parse_node(node)
        kw = expand_kwargs(base.kwargs, k)
        rows = slice(resume.READOUT_POS, resume.READOUT_POS + 1) if layer == subject.n_layers - 1 else slice(None)
        pre = (base.embed if layer == 0 else base.resid[layer - 1]).repeat(k, 1, 1)  # [kB, pos, d]
        if kind == "in":
            mid = base.mid[layer].repeat(k, 1, 1)[:, rows]
            out = resume.from_mlp_out(subject, layer, mid, resume.mlp(subject, layer, flat[:, rows]))
        else:
            ins = {"q": pre, "k": pre, "v": pre, kind: flat}  # post-LN: q/k/v read the layer input
            z = base.z[layer].repeat(k, 1, 1, 1)[:, rows]  # [kB, q, head, d_head]
            z[:, :, h] = resume.head_z(subject, layer, h, ins["q"][:, rows], ins["k"], ins["v"],
                                       kw.get("attention_mask"), rows)
            out = resume.from_z(subject, layer, pre[:, rows], z)
        logits = resume.finish(subject, layer + 1, out, kw)
    return metric_values(metric, logits).double().view(k, B).sum(1).tolist()


# interp.circuits.evaluation._edge_logits before the delta/dedup rewrite (commit 7d2fb0a), verbatim
def old_edge_logits(subject: Any, clean: _Values, corrupt: _Values, edges: set[str]) -> torch.Tensor:
    """Logits of the circuit run for one batch (see the module doc)."""
    L, H = subject.n_layers, subject.n_heads
    dev = clean.embed.device
    z_circ: list[torch.Tensor] = []
    mlp_circ: list[torch.Tensor] = []

    def sender_on(receivers: list[str], layer_lim: int) -> tuple[torch.Tensor, list, list]:
        emb_on = torch.tensor([f"input->{r}" in edges for r in receivers], device=dev)
        zs, ms = [], []
        for l in range(layer_lim):
            on = torch.tensor([[f"L{l}H{h}->{r}" in edges for h in range(H)] for r in receivers],
                              device=dev)  # [K, head]
            zs.append(_mix_z(on, z_circ[l] if l < len(z_circ) else corrupt.z[l], corrupt.z[l]))
            if l < len(mlp_circ):
                ms.append(_mix(torch.tensor([f"L{l}M->{r}" in edges for r in receivers], device=dev), mlp_circ[l],
                                corrupt.mlp[l]))
        return _mix(emb_on, clean.embed, corrupt.embed), zs, ms

    B = clean.embed.shape[0]
    for l in range(L):
        recv = receivers_at(subject, l)
        K = len(recv)
        # q/k/v receivers of layer l read senders of layers < l (layer l's z is written but not run)
        emb, zs, ms = sender_on(recv, l + 1)
        pre, _ = _receiver_inputs(subject, l, emb, zs, ms, need_mid=False)
        pre = pre.view(K, B, *pre.shape[1:])                             # [K, B, pos, d]
        q_in = torch.stack([pre[3 * h] for h in range(H)], dim=2)        # [B, pos, head, d]
        k_in = torch.stack([pre[3 * h + 1] for h in range(H)], dim=2)
        v_in = torch.stack([pre[3 * h + 2] for h in range(H)], dim=2)
        c = _run_layer_with_receivers(subject, l, clean.kwargs, q_in, k_in, v_in, None, pre[-1],
                                      reads=[f"blocks.{l}.attn.hook_z"])
        z_circ.append(c[f"blocks.{l}.attn.hook_z"])
        # MLP receiver: needs this layer's circuit z
        emb, zs, ms = sender_on([f"L{l}M.in"], l + 1)
        _, mid = _receiver_inputs(subject, l, emb, zs, ms, need_mid=True)
        c = _run_layer_with_receivers(subject, l, clean.kwargs, q_in, k_in, v_in, mid, pre[-1],
                                      reads=[f"blocks.{l}.hook_mlp_out"])
        mlp_circ.append(c[f"blocks.{l}.hook_mlp_out"])
    emb, zs, ms = sender_on(["logits.in"], L)
    pres, _ = _chain(subject, emb, 0, L, zs, ms)
    return subject.arch.head(subject.model, pres[L])


# one layer run with per-head q/k/v inputs through hooks on the HuggingFace block (interp.circuits.runs
# before the direct-attention rewrite of interp.circuits.evaluation), verbatim; also the hooked reference
# of tests/test_circuits.py
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

