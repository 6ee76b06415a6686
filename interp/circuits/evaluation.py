"""Evaluating a circuit: the circuit run of an edge set (receivers read clean values of their circuit
senders, corrupted values of the rest, layer by layer), node circuits (non-circuit heads/MLPs
corrupted), faithfulness and its paired bootstrap interval."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from interp import engine
from interp.arch import get_linear
from interp.circuits.deltas import ALL, READOUT, _Deltas
from interp.circuits.graph import _check_arch, _check_names, all_edges, node_names
from interp.circuits.runs import _Values, _values, receiver_view
from interp.contrast import Contrast, metric_values
from interp.patching import check_pairs
from interp.signal import bootstrap_ci, check_finite, gap_share

CPU_RUN_BATCH = 16  # pairs per edge-circuit run on CPU (see edge_runner)


def _heads_z(subject: Any, layer: int, heads: list[int], q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor,
             attention_mask: torch.Tensor | None, rows: slice) -> torch.Tensor:
    """z [B, q, active, d_head] of `heads` when head heads[a] projects its query from q_in[a] [active, B, q, d]
    (positions `rows`) and its key and value from k_in[a], v_in[a] [active, B, pos, d]: the receivers'
    streams (pre-LN: through the attention LayerNorm, `receiver_view`). The rest of the layer is not run."""
    p, H = subject.arch.layer_math, subject.n_heads
    idx = torch.tensor(heads, device=q_in.device)

    def proj(path: str, x: torch.Tensor) -> torch.Tensor:  # [active, B, n, d] -> [B, active, n, d_head]
        lin = get_linear(subject.layers[layer], path)
        W = lin.weight.view(H, -1, lin.weight.shape[1])[idx]                    # [active, d_head, d]
        x = receiver_view(subject, layer, x, "pre")
        out = torch.matmul(x.flatten(1, 2), W.transpose(1, 2))                 # [active, B * n, d_head]
        if lin.bias is not None:
            out = out + lin.bias.view(H, 1, -1)[idx]
        return out.view(x.shape[0], x.shape[1], x.shape[2], -1).transpose(0, 1)

    return engine.attend(subject, layer, proj(p.q, q_in), proj(p.k, k_in), proj(p.v, v_in), attention_mask, rows)


def _same_kwargs(a: dict, b: dict) -> bool:
    """Whether two runs' layer kwargs (attention masks) are equal."""
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] is b[k] or a[k] == b[k] for k in a)


class _Plan:
    """An edge set as 0/1 sender masks per receiver layer (built once, used for every batch): `masks[l]`
    [receivers of layer l, senders] (layer L: `logits.in`), senders ordered input, then per layer its heads
    and its MLP; and which nodes send and which receive circuit edges."""

    def __init__(self, subject: Any, edges: set[str], dtype: torch.dtype, device: torch.device | str):
        L, H = subject.n_layers, subject.n_heads
        self.sends = {e.split("->", 1)[0] for e in edges}
        self.fed = {e.split("->", 1)[1].split(".", 1)[0] for e in edges}
        col = {"input": 0, **{f"L{l}H{h}": 1 + l * (H + 1) + h for l in range(L) for h in range(H)},
               **{f"L{l}M": 1 + l * (H + 1) + H for l in range(L)}}
        rows = {f"L{l}H{h}.{k}": (l, 3 * h + "qkv".index(k)) for l in range(L) for h in range(H) for k in "qkv"}
        rows.update({f"L{l}M.in": (l, 3 * H) for l in range(L)}, **{"logits.in": (L, 0)})
        self.masks = [torch.zeros(3 * H + 1 if l < L else 1, 1 + L * (H + 1), dtype=dtype) for l in range(L + 1)]
        for e in edges:
            sender, receiver = e.split("->", 1)
            layer, row = rows[receiver]
            self.masks[layer][row, col[sender]] = 1.0
        self.masks = [m.to(device) for m in self.masks]
        self.n_layers, self.n_heads = L, H

    def on(self, layer: int, rows: list[int] | slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Senders of receivers `rows` of layer `layer`: input [K], heads [K, layer, head], MLPs [K, layer]."""
        m = self.masks[layer][rows]                                              # [K, senders]
        per_layer = m[:, 1:].view(m.shape[0], self.n_layers, self.n_heads + 1)
        return m[:, 0], per_layer[:, :, :self.n_heads], per_layer[:, :, self.n_heads]


def _edge_logits(subject: Any, clean: _Values, corrupt: _Values, edges: set[str] | _Plan) -> torch.Tensor:
    """Logits of the circuit run for one batch (see the module doc). Only heads and MLPs that send
    circuit edges and receive some (or attend with a mask the corrupted run did not) are recomputed: any
    other keeps its corrupted value, as it is read nowhere or computes exactly that."""
    L, H = subject.n_layers, subject.n_heads
    plan = edges if isinstance(edges, _Plan) else _Plan(subject, edges, clean.embed.dtype, clean.embed.device)
    d = _Deltas(subject, clean, corrupt)
    # a node with every input corrupted computes its corrupted value only where both runs mask alike (padded
    # pairs: the circuit run attends with the clean mask)
    same_mask = _same_kwargs(clean.kwargs, corrupt.kwargs)

    def recomputed(node: str) -> bool:
        return node in plan.sends and (node in plan.fed or not same_mask)

    mask = clean.kwargs.get("attention_mask")
    for l in range(L):
        # the classifier reads the readout row of the last layer only: there, queries and the MLP too
        rows = READOUT if l == L - 1 else ALL
        heads = [h for h in range(H) if recomputed(f"L{l}H{h}")]
        z = None
        if heads:
            # q/k/v receivers of layer l read senders of layers < l; the other heads keep their corrupted z
            if rows == ALL:
                pre, _ = d.inputs(*plan.on(l, [3 * h + i for h in heads for i in range(3)]), stop=l, mid=False)
                q_in, k_in, v_in = pre[0::3], pre[1::3], pre[2::3]             # [active, B, pos, d] each
            else:
                q_in, _ = d.inputs(*plan.on(l, [3 * h for h in heads]), stop=l, mid=False, rows=rows)
                kv, _ = d.inputs(*plan.on(l, [3 * h + i for h in heads for i in (1, 2)]), stop=l, mid=False)
                k_in, v_in = kv[0::2], kv[1::2]
            z = _heads_z(subject, l, heads, q_in, k_in, v_in, mask, rows)
        d.add_heads(l, z, heads, rows)
        # the MLP receiver also reads this layer's heads
        if recomputed(f"L{l}M"):
            _, mid = d.inputs(*plan.on(l, [3 * H]), stop=l, mid=True, rows=rows)
            assert mid is not None
            d.add_mlp(l, engine.mlp(subject, l, receiver_view(subject, l, mid[0], "mid")), rows)  # [B, q, d]
        else:
            d.add_mlp(l, None, rows)
    pre, _ = d.inputs(*plan.on(L, [0]), stop=L, mid=False, rows=READOUT)
    return subject.arch.head(subject.model, pre[0])


def recorded_batches(subject: Any, contrast: Contrast, batch_size: int) -> Iterator[tuple[_Values, _Values]]:
    """Each batch's clean and corrupted sites (every site a circuit run or edge score reads), one batch
    at a time; their `metric` fields are the endpoint values."""
    for b in contrast.batches(batch_size):
        with torch.no_grad():  # left before yielding: the caller's grad mode is its own
            pair = _values(subject, contrast.metric, b.clean, "clean"), _values(subject, contrast.metric, b.corrupt,
                                                                                "corrupted")
        yield pair


def record_pairs(subject: Any, contrast: Contrast, batch_size: int = 32) -> list[tuple[_Values, _Values]]:
    """`recorded_batches` kept for many edge-circuit runs (`edge_runner`), about 4 * n_layers * d_model
    floats per token and side."""
    _check_arch(subject)
    check_pairs(contrast)
    if torch.device(subject.device).type == "cpu":
        # on CPU, batches of 16 pairs keep more of a run in cache (MiniLM NLI teacher, 64 HANS pairs, random
        # edge sets of 3,794 / 950 / 200 edges: 4.4 s at 16 pairs, 5.5 s at 32, 4.5 s at 8, 4.8 s at 4, measured
        # once on the 2-core CPU; after the prefix-sharing rewrite 16, 32 and 64 pairs are within the noise)
        batch_size = min(batch_size, CPU_RUN_BATCH)
    return list(recorded_batches(subject, contrast, batch_size))


def edge_runner(subject: Any, contrast: Contrast, batch_size: int = 32,
                recorded: list[tuple[_Values, _Values]] | None = None) -> Callable[[Iterable[str]], torch.Tensor]:
    """`run(edges)` -> per-pair metric of the circuit run [n] float64, for many edge sets on one contrast
    (pruning): the clean and corrupted sites of each batch are recorded once (`record_pairs`, or pass
    them as `recorded`) and kept."""
    values = record_pairs(subject, contrast, batch_size) if recorded is None else recorded
    names = all_edges(subject)

    def run(edges: Iterable[str]) -> torch.Tensor:
        edges = set(edges)
        _check_names(subject, edges, names, "edge")
        out = []
        with torch.no_grad():
            plan = _Plan(subject, edges, values[0][0].embed.dtype, values[0][0].embed.device)
            for cv, rv in values:
                vals = metric_values(contrast.metric, _edge_logits(subject, cv, rv, plan)).double().cpu()
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
    return bootstrap_ci(rows, n_boot, seed, of_means=gap_share)
