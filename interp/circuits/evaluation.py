"""Evaluating a circuit: the circuit run of an edge set (receivers read clean values of their circuit
senders, corrupted values of the rest, layer by layer), node circuits (non-circuit heads/MLPs
corrupted), faithfulness and its paired bootstrap interval."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from interp import engine
from interp.arch import get_linear
from interp.circuits.graph import _check_arch, _check_names, all_edges, node_names, receivers_at
from interp.circuits.runs import _run_layer_with_receivers, _Values, _values
from interp.contrast import Contrast, metric_values
from interp.patching import check_pairs
from interp.signal import bootstrap_ci, check_finite


class _Deltas:
    """Per-layer differences between the circuit run and the corrupted run, in residual-stream units, so
    that a receiver's input is the corrupted value plus its circuit senders' deltas (the output projection
    is linear): `head[l]` [head, B, pos, d], `mlp[l]` [B, pos, d], `embed` [B, pos, d]."""

    def __init__(self, subject: Any, clean: _Values, corrupt: _Values):
        self.subject, self.corrupt = subject, corrupt
        self.embed = clean.embed - corrupt.embed
        self.attn: list[torch.Tensor] = []   # corrupted attn_out per layer [B, pos, d]
        self.head: list[torch.Tensor] = []
        self.mlp: list[torch.Tensor] = []

    def add_heads(self, layer: int, z_circ: torch.Tensor) -> None:
        """Layer `layer`'s per-head deltas from its circuit-run z [B, pos, head, d_head]."""
        w = get_linear(self.subject.layers[layer], self.subject.arch.o_proj).weight
        W = w.view(w.shape[0], self.subject.n_heads, -1)                            # [d, head, d_head]
        dz = z_circ - self.corrupt.z[layer]                                         # [B, pos, head, d_head]
        self.head.append(torch.einsum("bphe,dhe->hbpd", dz, W))
        self.attn.append(engine.attn_out_of(self.subject, layer, self.corrupt.z[layer]))

    def inputs(self, on_e: torch.Tensor, on_h: torch.Tensor, on_m: torch.Tensor, stop: int, mid: bool
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """resid_pre of layer `stop` (and, with `mid`, its resid_mid) for K receivers whose senders are
        switched on by on_e [K], on_h [K, stop (+1 with mid), head], on_m [K, stop] (0/1 floats): the
        residual stream rebuilt through the LayerNorms (interp.engine). Receivers with the same senders
        share one computation. Returns [K, B, pos, d] tensors."""
        K, H = on_e.shape[0], self.subject.n_heads
        nh = on_h.shape[1]
        key = torch.cat([on_e[:, None], on_h.reshape(K, -1), on_m], 1)          # [K, senders]
        uniq, inv = torch.unique(key, dim=0, return_inverse=True)
        U = uniq.shape[0]
        u_e, u_h, u_m = uniq[:, 0], uniq[:, 1:1 + nh * H].view(U, nh, H), uniq[:, 1 + nh * H:]
        c = self.corrupt
        h = c.embed + u_e[:, None, None, None] * self.embed                       # [U, B, pos, d]
        for j in range(stop):
            attn = self.attn[j] + torch.einsum("uh,hbpd->ubpd", u_h[:, j], self.head[j])
            m = engine.resid_mid(self.subject, j, h, attn)
            h = engine.from_mlp_out(self.subject, j, m, c.mlp[j] + u_m[:, j, None, None, None] * self.mlp[j])
        if not mid:
            return h[inv], None
        attn = self.attn[stop] + torch.einsum("uh,hbpd->ubpd", u_h[:, stop], self.head[stop])
        return h[inv], engine.resid_mid(self.subject, stop, h, attn)[inv]


def _edge_logits(subject: Any, clean: _Values, corrupt: _Values, edges: set[str]) -> torch.Tensor:
    """Logits of the circuit run for one batch (see the module doc)."""
    L, H = subject.n_layers, subject.n_heads
    dev, dt = clean.embed.device, clean.embed.dtype
    d = _Deltas(subject, clean, corrupt)

    def on(receivers: list[str], n_head_layers: int, n_mlp_layers: int
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Which senders feed each receiver: input [K], heads [K, layer, head], MLPs [K, layer]."""
        e = [f"input->{r}" in edges for r in receivers]
        hs = [[[f"L{j}H{h}->{r}" in edges for h in range(H)] for j in range(n_head_layers)] for r in receivers]
        ms = [[f"L{j}M->{r}" in edges for j in range(n_mlp_layers)] for r in receivers]
        f = lambda x: torch.tensor(x, dtype=dt, device=dev)  # noqa: E731
        return f(e), f(hs).view(len(receivers), n_head_layers, H), f(ms).view(len(receivers), n_mlp_layers)

    for l in range(L):
        recv = receivers_at(subject, l)[:-1]                                    # q/k/v of each head
        # q/k/v receivers of layer l read senders of layers < l
        pre, _ = d.inputs(*on(recv, l, l), stop=l, mid=False)                  # [3 * head, B, pos, d]
        q_in, k_in, v_in = (pre[i::3].permute(1, 2, 0, 3) for i in range(3))    # [B, pos, head, d]
        c = _run_layer_with_receivers(subject, l, clean.kwargs, q_in, k_in, v_in, None,
                                      corrupt.resid[l - 1] if l else corrupt.embed,
                                      reads=[f"blocks.{l}.attn.hook_z"])
        d.add_heads(l, c[f"blocks.{l}.attn.hook_z"])
        # the MLP receiver also reads this layer's heads
        _, mid = d.inputs(*on([f"L{l}M.in"], l + 1, l), stop=l, mid=True)
        assert mid is not None
        d.mlp.append(engine.mlp(subject, l, mid[0]) - corrupt.mlp[l])           # [B, pos, d]
    pre, _ = d.inputs(*on(["logits.in"], L, L), stop=L, mid=False)
    return subject.arch.head(subject.model, pre[0])


def edge_runner(subject: Any, contrast: Contrast, batch_size: int = 32) -> Callable[[Iterable[str]], torch.Tensor]:
    """`run(edges)` -> per-pair metric of the circuit run [n] float64, for many edge sets on one contrast
    (pruning): the clean and corrupted sites of each batch are recorded once and kept (about
    4 * n_layers * d_model floats per token and side)."""
    _check_arch(subject)
    check_pairs(contrast)
    names = all_edges(subject)
    with torch.no_grad():
        values = [(_values(subject, contrast.metric, b.clean, "clean"),
                   _values(subject, contrast.metric, b.corrupt, "corrupted")) for b in contrast.batches(batch_size)]

    def run(edges: Iterable[str]) -> torch.Tensor:
        edges = set(edges)
        _check_names(subject, edges, names, "edge")
        out = []
        with torch.no_grad():
            for cv, rv in values:
                vals = metric_values(contrast.metric, _edge_logits(subject, cv, rv, edges)).double().cpu()
                out.append(check_finite(vals, f"{subject.name}, metric of an edge-circuit run ({len(edges)} edges)"))
        return torch.cat(out)

    return run


def edge_run_values(subject: Any, contrast: Contrast, edges: Iterable[str], batch_size: int = 32) -> torch.Tensor:
    """Per-pair metric of the circuit run (edges carry clean values, all else corrupted): [n] float64."""
    return edge_runner(subject, contrast, batch_size)(edges)


def evaluate_edges(subject: Any, contrast: Contrast, edges: Iterable[str], batch_size: int = 32) -> float:
    """Mean metric of the circuit run (edges carry clean values, all else corrupted)."""
    return float(edge_run_values(subject, contrast, edges, batch_size).mean())


def node_runner(subject: Any, contrast: Contrast, batch_size: int = 32, keep: bool = True
                ) -> Callable[[Iterable[str]], torch.Tensor]:
    """`run(nodes)` -> per-pair metric [n] float64 on clean inputs with every head/MLP outside `nodes`
    (inside, if keep=False) set to its corrupted value, for many node sets on one contrast (pruning): the
    corrupted sites of each batch are recorded once and kept."""
    check_pairs(contrast)
    names = node_names(subject)
    L, H = subject.n_layers, subject.n_heads
    with torch.no_grad():
        values = [(b.clean, _values(subject, contrast.metric, b.corrupt, "corrupted"))
                  for b in contrast.batches(batch_size)]

    def run(nodes: Iterable[str]) -> torch.Tensor:
        nodes = set(nodes)
        _check_names(subject, nodes, names, "node")
        out = []
        with torch.no_grad():
            for clean, rv in values:
                write: dict[str, Any] = {}
                for l in range(L):
                    on = torch.tensor([(f"L{l}H{h}" in nodes) == keep for h in range(H)], device=subject.device)
                    write[f"blocks.{l}.attn.hook_z"] = (lambda v, on=on, c=rv.z[l]:
                                                        torch.where(on[None, None, :, None], v, c))
                    if (f"L{l}M" in nodes) != keep:
                        write[f"blocks.{l}.hook_mlp_out"] = rv.mlp[l]
                vals = metric_values(contrast.metric, subject.run(clean, write=write)[0]).double().cpu()
                out.append(check_finite(vals, f"{subject.name}, metric of a node-circuit run ({len(nodes)} nodes)"))
        return torch.cat(out)

    return run


def node_run_values(subject: Any, contrast: Contrast, nodes: Iterable[str], batch_size: int = 32,
                    keep: bool = True) -> torch.Tensor:
    """Per-pair metric on clean inputs with every head/MLP outside `nodes` (inside, if keep=False) set to its
    corrupted value: [n] float64."""
    return node_runner(subject, contrast, batch_size, keep)(nodes)


def evaluate_nodes(subject: Any, contrast: Contrast, nodes: Iterable[str], batch_size: int = 32,
                   keep: bool = True) -> float:
    """Mean metric on clean inputs with every head/MLP outside `nodes` (inside, if keep=False) set to its
    corrupted value."""
    return float(node_run_values(subject, contrast, nodes, batch_size, keep).mean())



def _faith(m: float, clean: float, corrupt: float) -> float:
    return (m - corrupt) / (clean - corrupt)


def _mean(x: Any) -> float:
    return float(torch.as_tensor(x, dtype=torch.float64).mean())



def faithfulness_ci(clean_v: torch.Tensor, corrupt_v: torch.Tensor, circuit_v: torch.Tensor, n_boot: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap 95% interval over pairs of mean(m_circ - m_corrupt) / mean(m_clean - m_corrupt)."""
    rows = torch.stack([clean_v, corrupt_v, circuit_v], 1).double().cpu().numpy()  # [n, 3]

    def ratio(v) -> float:
        den = v[:, 0].mean() - v[:, 1].mean()
        return float((v[:, 2].mean() - v[:, 1].mean()) / den) if den != 0 else math.nan

    return bootstrap_ci(rows, n_boot, seed, stat=ratio)

