"""Evaluating a circuit: the circuit run of an edge set (receivers read clean values of their circuit
senders, corrupted values of the rest, layer by layer), node circuits (non-circuit heads/MLPs
corrupted), faithfulness and its paired bootstrap interval."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from interp.circuits.graph import _check_arch, _check_names, all_edges, node_names, receivers_at
from interp.circuits.runs import _chain, _mix, _mix_z, _receiver_inputs, _run_layer_with_receivers, _Values, _values
from interp.contrast import Contrast, metric_values
from interp.patching import check_pairs
from interp.signal import bootstrap_ci, check_finite


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

