"""Circuit discovery for post-LayerNorm encoders (BERT, RoBERTa, DistilBERT): nodes and edges.

Why not TransformerLens-style edge attribution: it writes a receiver's input as the sum of sender
outputs, which holds for pre-LN models only. In a post-LN encoder every block ends in a LayerNorm, so
the layer input is a nonlinear function of all earlier outputs.

Our definition (valid for any residual architecture, exact through the LayerNorms):
- Nodes: `input` (embedding output), heads `L{l}H{h}`, MLPs `L{l}M`, and `logits`.
- Edges: sender -> receiver input, where receivers are a head's query, key or value input
  (`L{l}H{h}.q|k|v`), an MLP's input (`L{l}M.in`) and the classifier input (`logits.in`). Heads feed
  MLPs of their own layer and everything in later layers.
- The input that receiver r sees is recomputed from the embedding and all component outputs before
  it, re-running every LayerNorm on the way: `x_r = F_r(embed, {o_c})`. Patching edge s -> r means r
  alone sees `F_r` with sender s at its source value and every other component at its base value;
  every other component, and the rest of the forward pass, is untouched (path patching, Wang et al.
  2022, Goldowsky-Dill et al. 2023, with the residual recomputed rather than summed).
- Edge scores: `exact` runs that patch (per receiver, batched over its senders, resuming at the
  receiver's layer with only the receiver head's z, or the MLP, recomputed there); `atp` computes
  the exact sender-only input change `x_r(s) - x_r` through the LayerNorms (one forward per sender
  layer, batched) and dots it with d metric / d x_r from one backward pass (linear on the receiver
  side only).
- Evaluating a circuit (edge set E): each receiver r computes its input from clean values of the
  senders with an edge s -> r in E (their values in this circuit run) and corrupted values of all
  other senders, layer by layer (a layer whose z and mlp_out are both set is rebuilt from them alone:
  output projection, residuals, LayerNorms). With all edges this is the clean run, with none the
  corrupted run (both tested). Faithfulness = (m_circuit - m_corrupt) / (m_clean - m_corrupt); completeness =
  1 - faithfulness of the complement (how much of the effect the rest of the model cannot carry).
  Node circuits: non-circuit heads/MLPs take corrupted values in one ordinary forward pass.

Scores are "importance" = share of the clean-corrupt gap the component carries: for
`direction="noise"` (patch corrupted values into the clean run) `(m_clean - m)/(m_clean - m_corrupt)`,
for `"denoise"` `(m - m_corrupt)/(m_clean - m_corrupt)`. Pruning keeps the top-|score| nodes or edges,
the fewest that reach `target` faithfulness (binary search over the count on the sorted list).
Faithfulness and completeness are reported with paired bootstrap 95% intervals over pairs.

No-signal guard (interp.signal): there is nothing to be faithful to when the clean - corrupted gap's
95% interval includes 0 (or |gap| < 2 SE). `discover` then raises NoSignalError before scoring;
with `allow_no_signal=True` it returns a Circuit with the raw (unnormalised) metric changes as scores,
no nodes or edges, `metadata["no_signal"] = True` and faithfulness None. `node_scores` and
`edge_scores` raise likewise, or return NaN scores under the flag. A NaN or inf in a layer's output,
site value, gradient or circuit run raises FloatingPointError naming the model and site.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interp import resume
from interp.arch import ARCHS, get_module
from interp.backends.hooks import _first, expand_kwargs, installed, layer_inputs
from interp.contrast import Contrast, metric_values
from interp.patching import check_pairs, check_run, endpoint_values, gap_signal, patch
from interp.progress import bar as progress_bar
from interp.signal import Signal, bootstrap_ci, check_finite, require_signal


@dataclass
class Circuit:
    """Nodes, edges ("sender->receiver.kind"), scores of every candidate, and metadata."""

    nodes: list[str]
    edges: list[str]
    scores: dict[str, float]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps({"nodes": self.nodes, "edges": self.edges, "scores": self.scores,
                           "metadata": self.metadata}, indent=2, sort_keys=True, default=str)
        if path is not None:
            from interp.provenance import atomic_write_bytes
            atomic_write_bytes(path, (text + "\n").encode())
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> Circuit:
        text = Path(source).read_text() if not str(source).lstrip().startswith("{") else str(source)
        d = json.loads(text)
        return cls(list(d["nodes"]), list(d["edges"]), {k: float(v) for k, v in d["scores"].items()},
                   dict(d.get("metadata", {})))


# --- graph -----------------------------------------------------------------------------------------
def _check_arch(subject: Any) -> tuple[str, str, str, str]:
    """Per layer: the query, key and value projections and the module whose input is the MLP input
    (from interp.arch). Receivers read the layer input directly, so post-LN families only."""
    lm = getattr(subject.arch, "layer_math", None)
    if lm is None or lm.pre_ln:
        supported = sorted(f for f, a in ARCHS.items() if a.layer_math is not None and not a.layer_math.pre_ln)
        raise ValueError(f"Circuit discovery needs query/key/value and MLP-input sites, which the "
                         f"{subject.arch.family!r} architecture map lacks (supported: {supported}).")
    return lm.q, lm.k, lm.v, subject.arch.mlp_modules[0]


def node_names(subject: Any) -> list[str]:
    """Heads and MLPs in forward order (the candidates of a node circuit)."""
    out = []
    for l in range(subject.n_layers):
        out += [f"L{l}H{h}" for h in range(subject.n_heads)] + [f"L{l}M"]
    return out


def receivers_at(subject: Any, layer: int) -> list[str]:
    return [f"L{layer}H{h}.{k}" for h in range(subject.n_heads) for k in "qkv"] + [f"L{layer}M.in"]


def senders_before(subject: Any, receiver: str) -> list[str]:
    """Senders that can reach a receiver: the input, heads/MLPs of earlier layers, heads of the same
    layer for an MLP receiver."""
    if receiver == "logits.in":
        return ["input"] + node_names(subject)
    node, kind = receiver.split(".")
    layer = int(node[1:node.index("H" if "H" in node else "M")])
    out = ["input"] + [n for n in node_names(subject) if int(n[1:n.index("H" if "H" in n else "M")]) < layer]
    if kind == "in":
        out += [f"L{layer}H{h}" for h in range(subject.n_heads)]
    return out


def all_edges(subject: Any) -> list[str]:
    recv = [r for l in range(subject.n_layers) for r in receivers_at(subject, l)] + ["logits.in"]
    return [f"{s}->{r}" for r in recv for s in senders_before(subject, r)]


def _parse_node(n: str) -> tuple[str, int, int]:
    """('input'|'head'|'mlp'|'logits', layer, head)."""
    if n in ("input", "logits"):
        return n, -1, -1
    if n.endswith("M"):
        return "mlp", int(n[1:-1]), -1
    l, h = n[1:].split("H")
    return "head", int(l), int(h)


def _check_names(subject: Any, names: Iterable[str], valid: Sequence[str], what: str) -> None:
    vs = set(valid)
    for n in names:
        if n not in vs:
            raise ValueError(f"Unknown {what} {n!r} for this {subject.n_layers}-layer, {subject.n_heads}-head "
                             f"{subject.arch.family} model (e.g. {list(valid)[:3]}).")


# --- runs with per-copy component values ----------------------------------------------------------
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
    reads = [f"blocks.{l}.{k}" for l in range(L)
             for k in ("attn.hook_z", "hook_mlp_out", "hook_resid_post", "hook_resid_mid")]
    logits, c = subject.run(batch, read=reads)
    check_run(subject, logits, c, which)
    embed, kw = layer_inputs(subject, batch)
    m = metric_values(metric, logits).double()  # [B]
    return _Values(embed, [c[f"blocks.{l}.attn.hook_z"] for l in range(L)],
                   [c[f"blocks.{l}.hook_mlp_out"] for l in range(L)],
                   [c[f"blocks.{l}.hook_resid_post"] for l in range(L)],
                   [c[f"blocks.{l}.hook_resid_mid"] for l in range(L)], kw,
                   float(m.sum()), m.cpu())


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
        mids[l], h = resume.from_outputs(subject, l, h, z_vals[l], mlp_vals[l])
        pres[l + 1] = h
    if mid_at_stop:
        mids[stop] = resume.resid_mid(subject, stop, h, resume.attn_out_of(subject, stop, z_vals[stop]))
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
    (per-head inputs) and the MLP reads mlp_in [n, pos, d] (None: its own input); returns the `reads`
    and the layer output as "_out"."""
    qn, kn, vn, mn = _check_arch(subject)
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
            cache["_out"] = _first(blk(h, **kwargs))
    finally:
        for hd in handles:
            hd.remove()
    return cache


# --- evaluation ------------------------------------------------------------------------------------
def _edge_logits(subject: Any, clean: _Values, corrupt: _Values, edges: set[str]) -> torch.Tensor:
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


def edge_run_values(subject: Any, contrast: Contrast, edges: Iterable[str], batch_size: int = 32) -> torch.Tensor:
    """Per-pair metric of the circuit run (edges carry clean values, all else corrupted): [n] float64."""
    _check_arch(subject)
    check_pairs(contrast)
    edges = set(edges)
    _check_names(subject, edges, all_edges(subject), "edge")
    out = []
    with torch.no_grad():
        for b in contrast.batches(batch_size):
            cv, rv = _values(subject, contrast.metric, b.clean, "clean"), _values(subject, contrast.metric, b.corrupt,
                                                                                   "corrupted")
            vals = metric_values(contrast.metric, _edge_logits(subject, cv, rv, edges)).double().cpu()
            out.append(check_finite(vals, f"{subject.name}, metric of an edge-circuit run ({len(edges)} edges)"))
    return torch.cat(out)


def evaluate_edges(subject: Any, contrast: Contrast, edges: Iterable[str], batch_size: int = 32) -> float:
    """Mean metric of the circuit run (edges carry clean values, all else corrupted)."""
    return float(edge_run_values(subject, contrast, edges, batch_size).mean())


def node_run_values(subject: Any, contrast: Contrast, nodes: Iterable[str], batch_size: int = 32,
                    keep: bool = True) -> torch.Tensor:
    """Per-pair metric on clean inputs with every head/MLP outside `nodes` (inside, if keep=False) set to its
    corrupted value: [n] float64."""
    check_pairs(contrast)
    nodes = set(nodes)
    _check_names(subject, nodes, node_names(subject), "node")
    L, H = subject.n_layers, subject.n_heads
    out = []
    with torch.no_grad():
        for b in contrast.batches(batch_size):
            rv = _values(subject, contrast.metric, b.corrupt, "corrupted")
            write: dict[str, Any] = {}
            for l in range(L):
                on = torch.tensor([(f"L{l}H{h}" in nodes) == keep for h in range(H)], device=subject.device)
                write[f"blocks.{l}.attn.hook_z"] = (lambda v, on=on, c=rv.z[l]:
                                                    torch.where(on[None, None, :, None], v, c))
                if (f"L{l}M" in nodes) != keep:
                    write[f"blocks.{l}.hook_mlp_out"] = rv.mlp[l]
            vals = metric_values(contrast.metric, subject.run(b.clean, write=write)[0]).double().cpu()
            out.append(check_finite(vals, f"{subject.name}, metric of a node-circuit run ({len(nodes)} nodes)"))
    return torch.cat(out)


def evaluate_nodes(subject: Any, contrast: Contrast, nodes: Iterable[str], batch_size: int = 32,
                   keep: bool = True) -> float:
    """Mean metric on clean inputs with every head/MLP outside `nodes` (inside, if keep=False) set to its
    corrupted value."""
    return float(node_run_values(subject, contrast, nodes, batch_size, keep).mean())


# --- scores ----------------------------------------------------------------------------------------
def _signal_of(result: Any) -> Signal:
    d = dict(result.signal)
    d["ci95"] = tuple(d["ci95"])
    return Signal(**d)


def _node_effects(subject: Any, contrast: Contrast, method: str, direction: str, batch_size: int
                  ) -> tuple[dict[str, float], float, float, Signal]:
    """Unnormalised effect of every head and MLP (the metric change, signed like importance:
    m_clean - m for noising, m - m_corrupt for denoising), the endpoint means and the gap."""
    kw = dict(batch_size=batch_size, allow_no_signal=True)  # the caller judges the signal
    if method == "exact":
        heads = patch(subject, contrast, "head", False, direction, **kw)
        mlps = patch(subject, contrast, "mlp_out", False, direction, **kw)
    elif method in ("atp", "ig"):
        from interp.attribution import attribute
        heads = attribute(subject, contrast, "head", False, direction, method=method, **kw)
        mlps = attribute(subject, contrast, "mlp_out", False, direction, method=method, **kw)
    else:
        raise ValueError(f"method must be 'exact', 'atp' or 'ig', not {method!r}.")
    clean, corrupt = heads.clean_metric, heads.corrupt_metric
    effect = (lambda m: clean - m) if direction == "noise" else (lambda m: m - corrupt)
    out = {}
    for l in range(subject.n_layers):
        for h in range(subject.n_heads):
            out[f"L{l}H{h}"] = float(effect(float(heads.raw[l, h])))
        out[f"L{l}M"] = float(effect(float(mlps.raw[l])))
    return out, clean, corrupt, _signal_of(heads)


def _normalised(effects: dict[str, float], clean: float, corrupt: float, ok: bool) -> dict[str, float]:
    gap = clean - corrupt
    return {k: (v / gap if ok else math.nan) for k, v in effects.items()}


def node_scores(subject: Any, contrast: Contrast, method: str = "exact", direction: str = "noise",
                batch_size: int = 32, allow_no_signal: bool = False) -> tuple[dict[str, float], float, float]:
    """Importance of every head and MLP; also (m_clean, m_corrupt). NoSignalError when the gap is not
    significant; with `allow_no_signal` the scores are NaN then (raw changes: discover(..., allow_no_signal=True))."""
    effects, clean, corrupt, sig = _node_effects(subject, contrast, method, direction, batch_size)
    ok = _require(sig, allow_no_signal)
    return _normalised(effects, clean, corrupt, ok), clean, corrupt


def _require(sig: Signal, allow_no_signal: bool) -> bool:
    fix = "Use pairs whose clean and corrupted inputs differ in the behaviour (a model with a real effect), more pairs"
    return require_signal(sig, allow_no_signal, fix=fix)


def _sender_paths(subject: Any, base: _Values, src: _Values, layer: int | None
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


def _receiver_grads(subject: Any, metric: Any, base: _Values, batch: dict) -> dict[str, torch.Tensor]:
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


def edge_scores(subject: Any, contrast: Contrast, method: str = "atp", direction: str = "noise",
                batch_size: int = 32, max_rows: int = 4096, allow_no_signal: bool = False
                ) -> tuple[dict[str, float], float, float]:
    """Importance of every edge (see the module doc); also (m_clean, m_corrupt). The gap is checked
    before scoring: NoSignalError when it is not significant; with `allow_no_signal` NaN scores."""
    _check_arch(subject)
    if method not in ("exact", "atp"):
        raise ValueError(f"edge method must be 'exact' or 'atp', not {method!r}.")
    clean_v, corrupt_v = endpoint_values(subject, contrast, batch_size)
    sig = gap_signal(clean_v, corrupt_v, allow_no_signal=True)[0]
    ok = _require(sig, allow_no_signal)
    effects, clean, corrupt = _edge_effects(subject, contrast, method, direction, batch_size)
    return _normalised(effects, clean, corrupt, ok), clean, corrupt


def _edge_effects(subject: Any, contrast: Contrast, method: str, direction: str, batch_size: int
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
        grads = _receiver_grads(subject, contrast.metric, base, base_batch) if method == "atp" else None
        for layer in [None] + list(range(L)):
            with torch.no_grad():
                names, pre, mid = _sender_paths(subject, base, src, layer)
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
                            vals = _exact_edge(subject, contrast.metric, base, rl, r, xs)
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


def _exact_edge(subject: Any, metric: Any, base: _Values, layer: int, receiver: str, xs: torch.Tensor
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


# --- discovery ------------------------------------------------------------------------------------
def _faith(m: float, clean: float, corrupt: float) -> float:
    return (m - corrupt) / (clean - corrupt)


def _mean(x: Any) -> float:
    return float(torch.as_tensor(x, dtype=torch.float64).mean())


def prune(items: list[str], scores: dict[str, float], evaluate, clean: float, corrupt: float,
          target: float) -> tuple[list[str], float]:
    """Fewest top-|score| items whose faithfulness reaches `target` (binary search on the count).
    `evaluate(kept)` returns the mean metric of the circuit run, or its per-pair values."""
    order = sorted(items, key=lambda x: -abs(scores[x]))
    lo, hi = 0, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        if _faith(_mean(evaluate(order[:mid])), clean, corrupt) >= target:
            hi = mid
        else:
            lo = mid + 1
    chosen = order[:hi]
    return chosen, _faith(_mean(evaluate(chosen)), clean, corrupt)


def faithfulness_ci(clean_v: torch.Tensor, corrupt_v: torch.Tensor, circuit_v: torch.Tensor, n_boot: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap 95% interval over pairs of mean(m_circ - m_corrupt) / mean(m_clean - m_corrupt)."""
    rows = torch.stack([clean_v, corrupt_v, circuit_v], 1).double().cpu().numpy()  # [n, 3]

    def ratio(v) -> float:
        den = v[:, 0].mean() - v[:, 1].mean()
        return float((v[:, 2].mean() - v[:, 1].mean()) / den) if den != 0 else math.nan

    return bootstrap_ci(rows, n_boot, seed, stat=ratio)


def _no_signal_circuit(level: str, effects: dict[str, float], meta: dict[str, Any]) -> Circuit:
    """The override's result: raw metric changes, nothing pruned, no faithfulness to report."""
    meta = {**meta, "no_signal": True, "scores_unit": "raw metric change (no signal: not normalised)",
            "faithfulness": None, "completeness": None, "faithfulness_ci95": None, "completeness_ci95": None}
    return Circuit([], [], effects, meta)


def discover(subject: Any, contrast: Contrast, level: str = "node", method: str = "exact",
             direction: str = "noise", target: float = 0.8, batch_size: int = 32,
             allow_no_signal: bool = False) -> Circuit:
    """Score nodes or edges, prune to `target` faithfulness, report faithfulness and completeness with
    paired bootstrap 95% intervals. The clean - corrupted gap is checked first (see the module doc):
    NoSignalError when it is not significant; `allow_no_signal=True` returns raw scores, unpruned."""
    if level not in ("node", "edge"):
        raise ValueError(f"level must be 'node' or 'edge', not {level!r}.")
    _check_arch(subject)
    clean_v, corrupt_v = endpoint_values(subject, contrast, batch_size)  # [n] each; NaN-checked per layer
    sig = gap_signal(clean_v, corrupt_v, allow_no_signal=True)[0]
    ok = _require(sig, allow_no_signal)
    meta = {"level": level, "method": method, "direction": direction, "target": target, "n_pairs": len(contrast),
            "model": subject.name, "fingerprint": subject.fingerprint, "n_layers": subject.n_layers,
            "n_heads": subject.n_heads, "metric": contrast.meta.get("metric", ""), "signal": sig.to_dict(),
            "no_signal": not ok}
    if level == "node":
        effects, clean, corrupt, _ = _node_effects(subject, contrast, method, direction, batch_size)
        items = node_names(subject)
        run = lambda keep: node_run_values(subject, contrast, keep, batch_size)  # noqa: E731
    else:
        effects, clean, corrupt = _edge_effects(subject, contrast, method, direction, batch_size)
        items = all_edges(subject)
        run = lambda keep: edge_run_values(subject, contrast, keep, batch_size)  # noqa: E731
    meta.update({"n_candidates": len(items), "clean_metric": clean, "corrupt_metric": corrupt})
    if not ok:
        return _no_signal_circuit(level, effects, meta)
    scores = _normalised(effects, clean, corrupt, ok)
    seen: dict[int, torch.Tensor] = {}  # prefix length of the sorted list -> per-pair metric (each run once)

    def ev(keep: list[str]) -> torch.Tensor:
        if len(keep) not in seen:
            seen[len(keep)] = run(keep)
        return seen[len(keep)]

    chosen, faith = prune(items, scores, ev, clean, corrupt, target)
    cs = set(chosen)
    comp_v = run([x for x in items if x not in cs])  # the complement: 1 - its faithfulness = completeness
    comp = 1.0 - _faith(_mean(comp_v), clean, corrupt)
    f_lo, f_hi = faithfulness_ci(clean_v, corrupt_v, seen[len(chosen)])
    c_lo, c_hi = faithfulness_ci(clean_v, corrupt_v, comp_v)
    if level == "node":
        nodes, edges = chosen, []
    else:
        edges = chosen
        nodes = sorted({p for e in edges for p in (e.split("->")[0], e.split("->")[1].split(".")[0])},
                       key=lambda n: (n != "input", n == "logits", n))
    meta.update({"faithfulness": faith, "faithfulness_ci95": [f_lo, f_hi], "completeness": comp,
                 "completeness_ci95": [1.0 - c_hi, 1.0 - c_lo], "scores_unit": "share of the clean - corrupted gap"})
    return Circuit(nodes, edges, scores, meta)


def auroc(scores: dict[str, float], positives: Iterable[str]) -> float:
    """Area under the ROC curve of |score| separating `positives` from the rest (ties count half)."""
    pos = set(positives)
    p = [abs(v) for k, v in scores.items() if k in pos]
    n = [abs(v) for k, v in scores.items() if k not in pos]
    if not p or not n:
        return math.nan
    wins = sum((a > b) + 0.5 * (a == b) for a in p for b in n)
    return wins / (len(p) * len(n))
