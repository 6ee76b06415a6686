"""What every edge-scoring method reads: the receivers' inputs when one sender alone is patched, and the
gradient of the metric with respect to every receiver's input.

Sender-only inputs (`sender_inputs`): edge s -> r patches r's input to `x_r(s)`, the residual stream
recomputed through the LayerNorms with sender s at its source value and every other component at its
base value. After the sender's layer every component is at its base value, so each later layer only
adds the base attn_out / mlp_out and re-runs its LayerNorms: one walk over the layers serves all
senders at once (rows of one tensor), with no projection or MLP run. A head sender changes attn_out by
`(z_src - z_base)[h] @ W_O[h]`; the MLP sender replaces mlp_out. Receivers of layer l read the rows of
the senders before it (and its own heads, for its MLP input).

Pre-LN encoders: the walk sums the stream (no LayerNorm in it) and each yielded input is what the receivers
read, the layer's LayerNorm of that sum (runs.receiver_view): the change through the LayerNorm is exact, and
the gradients below are taken at the LayerNorm's output. The classifier reads the stream itself.

Receiver gradients (`receiver_grads`): one forward and one backward pass give d metric / d input of
every receiver: a head's q/k/v input gradient is `dm/d(q|k|v)[h] @ W_(q|k|v)[h]` (post-LN: all three
read the layer input; pre-LN: its LayerNorm), the MLP's the gradient at its input, the classifier's at the last
layer output.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from interp import engine
from interp.arch import get_linear, get_module
from interp.circuits.graph import _check_arch
from interp.circuits.runs import _Values, receiver_view
from interp.contrast import metric_values
from interp.engine import run_from

KINDS = ("q", "k", "v")  # a head's receivers, in receivers_at order


def head_out_weights(subject: Any, layer: int) -> torch.Tensor:
    """The output projection split by head: [head, d_head, d_model] (attn_out = sum_h z_h @ W[h] + bias)."""
    W = get_linear(subject.layers[layer], subject.arch.o_proj).weight  # [d_model, head * d_head]
    return W.T.reshape(subject.n_heads, -1, W.shape[0])


def head_in_weights(subject: Any, layer: int, kind: str) -> torch.Tensor:
    """The q, k or v projection split by head: [head, d_head, d_model]."""
    qn, kn, vn, _ = _check_arch(subject)
    W = get_linear(subject.layers[layer], {"q": qn, "k": kn, "v": vn}[kind]).weight  # [head * d_head, d_model]
    return W.view(subject.n_heads, -1, W.shape[1])


def sender_inputs(subject: Any, base: _Values, src: _Values) -> Iterator[tuple[str, int, list[torch.Tensor]]]:
    """Yields, in forward order, ("pre", l, X) for l = 0..L and ("mid", l, X) for l < L: the input of layer l
    (resid_pre; l = L: the classifier's input) or of its MLP (resid_mid) with one sender at its source value,
    one row per sender (in the last layer, "mid" and the classifier's input at the readout position only), in blocks: X = [block [s_i, B, pos, d], ...] whose rows, concatenated, are the senders
    in `sender_names` order that reach it (every earlier layer's; for "mid" also layer l's heads). Blocks (the
    input; per layer its heads, its MLP) are never concatenated: no copy of the growing sender set. Pre-LN: the
    blocks are the receivers' LayerNorm views of those streams (`base_input` gives the base run's)."""
    L = subject.n_layers
    xs = [src.embed[None]]                                                        # [1, B, pos, d]: `input`
    view = (lambda w, l, blocks: [receiver_view(subject, l, x, w) for x in blocks]) if subject.arch.layer_math.pre_ln \
        else (lambda w, l, blocks: blocks)
    for l in range(L):
        yield "pre", l, view("pre", l, xs)
        # after the last layer's attention only the readout row reaches the classifier
        r = slice(engine.READOUT_POS, engine.READOUT_POS + 1) if l == L - 1 else slice(None)
        pre_b = (base.embed if l == 0 else base.resid[l - 1])[:, r]               # [B, pos, d]
        attn_b = engine.attn_out_of(subject, l, base.z[l][:, r])                  # [B, pos, d]
        dz = (src.z[l] - base.z[l])[:, r]                                         # [B, pos, head, d_head]
        d_attn = torch.einsum("bphe,hed->hbpd", dz, head_out_weights(subject, l))  # [head, B, pos, d]
        mid = [engine.resid_mid(subject, l, x[:, :, r], attn_b) for x in xs]
        mid.append(engine.resid_mid(subject, l, pre_b, attn_b + d_attn))          # layer l's heads [head, B, pos, d]
        yield "mid", l, view("mid", l, mid)
        own = engine.from_mlp_out(subject, l, base.mid[l][:, r], src.mlp[l][:, r])  # the MLP sender [B, pos, d]
        xs = [engine.from_mlp_out(subject, l, x, base.mlp[l][:, r]) for x in mid] + [own[None]]
    yield "pre", L, xs


def base_input(subject: Any, base: _Values, where: str, layer: int) -> torch.Tensor:
    """The base run's receiver input in `sender_inputs`' view: [B, pos, d] (layer n_layers: the classifier's)."""
    x = (base.embed if layer == 0 else base.resid[layer - 1]) if where == "pre" else base.mid[layer]
    return receiver_view(subject, layer, x, where)


def receiver_grads(subject: Any, metric: Any, h0: torch.Tensor, layer_kwargs: dict
                   ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """d(sum metric)/d(receiver input) of the run from embedding output h0 [B, pos, d].

    Returns per layer the head receivers' [3 * head, B, pos, d] (row k * head + h: head h's q / k / v
    input for k = 0 / 1 / 2), per layer the MLP input's [B, pos, d], and the classifier input's [B, pos, d]."""
    qn, kn, vn, mn = _check_arch(subject)
    L = subject.n_layers
    saved: dict[str, torch.Tensor] = {}
    handles = []

    def keep_out(key: str):
        def hook(module, args, output):
            saved[key] = output
        return hook

    def clone_in(key: str):
        def hook(module, args):
            x = args[0].clone()
            saved[key] = x
            return (x,) + tuple(args[1:])
        return hook

    last = f"blocks.{L - 1}.hook_resid_post"
    try:
        for l, blk in enumerate(subject.layers):
            for name, kind in zip((qn, kn, vn), KINDS):
                handles.append(get_module(blk, name).register_forward_hook(keep_out(f"{l}.{kind}")))
            handles.append(get_module(blk, mn).register_forward_pre_hook(clone_in(f"{l}.in")))
        with torch.enable_grad():
            h = h0.detach().requires_grad_(True)  # a graph even when the weights are frozen
            logits, cache = run_from(subject, 0, h, layer_kwargs, read=[last], write={last: lambda v: v},
                                     readout_only=False)
            m = metric_values(metric, logits).sum()
            keys = list(saved)
            grads = torch.autograd.grad(m, [saved[k] for k in keys] + [cache[last]], allow_unused=True)
    finally:
        for hd in handles:
            hd.remove()
    g = {k: (v if v is not None else torch.zeros_like(saved[k])).detach() for k, v in zip(keys, grads)}
    final = (grads[-1] if grads[-1] is not None else torch.zeros_like(cache[last])).detach()
    heads, mlps = [], []
    with torch.no_grad():
        for l in range(L):
            heads.append(_head_grads(subject, l, g))
            mlps.append(g[f"{l}.in"])
    return heads, mlps, final


def _head_grads(subject: Any, l: int, g: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per head and kind, d metric / d input = dm/d(q|k|v)[h] @ W[h]: [3 * head, B, pos, d] (row k * head + h)."""
    H = subject.n_heads
    B, n, d = g[f"{l}.in"].shape
    out = torch.empty(3, H, B * n, d, dtype=g[f"{l}.in"].dtype, device=g[f"{l}.in"].device)  # [kind, head, B*pos, d]
    for i, kind in enumerate(KINDS):
        go = g[f"{l}.{kind}"].reshape(B * n, H, -1).transpose(0, 1)                # [head, B * pos, d_head]
        torch.bmm(go, head_in_weights(subject, l, kind), out=out[i])               # [head, B * pos, d]
    return out.view(3 * H, B, n, d)
