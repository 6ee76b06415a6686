"""Edge scores: exact edge patching, edge attribution patching (atp) and its integrated-gradients form (ig).

Every method reads the sender-only receiver inputs x_r(s) of interp.circuits.inputs, produced by one
walk over the layers per batch for all senders at once.
- `exact`: the metric when receiver r alone reads x_r(s), for every edge (interp.circuits.exact: all
  senders and heads of a receiver layer stacked in the batch).
- `atp` (edge attribution patching; Syed et al. 2023, with the input change taken exactly through the
  LayerNorms): `(x_r(s) - x_r) . dm/dx_r` at the base run, one forward and one backward pass per batch;
  the products of all senders and receivers of a layer are one matrix product.
- `ig` (EAP-IG, Hanna et al. 2024, named like interp.attribution's node-level IG): the same input change
  dotted with dm/dx_r averaged over `steps` runs whose embedding output lies on the straight line from
  the base to the source input (midpoint rule, alpha = (k + 0.5) / steps); `steps` forward/backward passes.
Effects are summed over pairs in float64; importance signs and normalisation are in interp.circuits.nodes.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from interp.circuits.evaluation import recorded_batches
from interp.circuits.exact import head_receivers, layer_base, logit_receivers, mlp_receivers
from interp.circuits.graph import _check_arch, all_edges, receivers_at, sender_names
from interp.circuits.inputs import KINDS, base_input, receiver_grads, sender_inputs
from interp.circuits.nodes import _normalised, _require
from interp.circuits.runs import _Values
from interp.contrast import Contrast
from interp.patching import endpoint_values, gap_signal
from interp.progress import bar as progress_bar
from interp.sweep import subject_chunk_rows

METHODS = ("exact", "atp", "ig")


def edge_scores(subject: Any, contrast: Contrast, method: str = "atp", direction: str = "noise",
                batch_size: int = 32, max_rows: int | None = None, allow_no_signal: bool = False, steps: int = 8
                ) -> tuple[dict[str, float], float, float]:
    """Importance of every edge (see the module doc); also (m_clean, m_corrupt). The gap is checked
    before scoring: NoSignalError when it is not significant; with `allow_no_signal` NaN scores."""
    _check_arch(subject)
    _check_method(method, steps)
    clean_v, corrupt_v = endpoint_values(subject, contrast, batch_size)
    sig = gap_signal(clean_v, corrupt_v, allow_no_signal=True)[0]
    ok = _require(sig, allow_no_signal)
    effects, clean, corrupt = _edge_effects(subject, contrast, method, direction, batch_size, steps=steps,
                                            max_rows=max_rows)
    return _normalised(effects, clean, corrupt, ok), clean, corrupt


def _check_method(method: str, steps: int) -> None:
    if method not in METHODS:
        raise ValueError(f"edge method must be one of {METHODS}, not {method!r}.")
    if method == "ig" and (not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a positive integer (integration points of 'ig'), not {steps!r}.")


def _dot(xs: list[torch.Tensor], x_base: torch.Tensor, g: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """sum over (pair, pos, d) of (x - x_base) times g, for the sender rows of the blocks xs [s_i, B, pos, d]:
    x_base [B, pos, d], g [R, B, pos, d] -> [S, R] float64. Per `chunk` pairs the differences of all senders
    are written into one buffer and multiplied by g once, in the model's dtype; chunks are summed in float64."""
    S = sum(x.shape[0] for x in xs)
    R, B = g.shape[:2]
    n = x_base[0].numel()
    acc = torch.zeros(S, R, dtype=torch.float64, device=x_base.device)
    buf = torch.empty(S, min(chunk, B), *x_base.shape[1:], dtype=x_base.dtype, device=x_base.device)
    for a in range(0, B, chunk):
        c = min(chunk, B - a)
        i = 0
        for x in xs:
            torch.sub(x[:, a:a + c], x_base[a:a + c], out=buf[i:i + x.shape[0], :c])
            i += x.shape[0]
        d = buf[:, :c].reshape(S, c * n)                                       # [S, c * pos * d]
        acc += (d @ g[:, a:a + c].reshape(R, c * n).T).double()                # [S, R]
    return acc


class _Totals:
    """Summed effects per receiver group: head receivers per layer [S_l, 3, head], MLPs [S_l + head], logits [S]."""

    def __init__(self, subject: Any) -> None:
        L, H = subject.n_layers, subject.n_heads
        n = [1 + (H + 1) * l for l in range(L + 1)]                       # senders before layer l
        self.subject = subject
        self.heads = [torch.zeros(n[l], 3, H, dtype=torch.float64) for l in range(L)]
        self.mlps = [torch.zeros(n[l] + H, dtype=torch.float64) for l in range(L)]
        self.logits = torch.zeros(n[L], dtype=torch.float64)

    def named(self) -> dict[str, float]:
        s, L = self.subject, self.subject.n_layers
        senders = sender_names(s)
        out: dict[str, float] = {}
        for l in range(L):
            for r in receivers_at(s, l):
                node, kind = r.split(".")
                col = self.mlps[l] if kind == "in" else self.heads[l][:, KINDS.index(kind), int(node.split("H")[1])]
                out.update({f"{senders[i]}->{r}": float(v) for i, v in enumerate(col.tolist())})
        out.update({f"{senders[i]}->logits.in": float(v) for i, v in enumerate(self.logits.tolist())})
        return {e: out[e] for e in all_edges(s)}


def _gradient_effects(subject: Any, metric: Any, base: _Values, src: _Values, totals: _Totals, method: str,
                      steps: int, tick) -> None:
    """Add the atp / ig effects of one batch to `totals`."""
    if method == "atp":
        g_heads, g_mlps, g_final = receiver_grads(subject, metric, base.embed, base.kwargs)
    else:
        acc = None
        for k in range(steps):
            h = base.embed + (k + 0.5) / steps * (src.embed - base.embed)   # [B, pos, d]
            g = receiver_grads(subject, metric, h, base.kwargs)
            acc = g if acc is None else ([a + b for a, b in zip(acc[0], g[0])], [a + b for a, b in zip(acc[1], g[1])],
                                         acc[2] + g[2])
        assert acc is not None  # steps >= 1, checked by the caller
        g_heads, g_mlps, g_final = [x / steps for x in acc[0]], [x / steps for x in acc[1]], acc[2] / steps
    L, H = subject.n_layers, subject.n_heads
    with torch.no_grad():
        for where, l, xs in sender_inputs(subject, base, src):
            if where == "pre" and l == L:
                row = slice(0, 1)  # the classifier reads the readout position only (xs hold only that row)
                totals.logits += _dot(xs, base.resid[L - 1][:, row], g_final[None, :, row])[:, 0].cpu()
            elif where == "pre":
                totals.heads[l] += _dot(xs, base_input(subject, base, "pre", l), g_heads[l]).view(-1, 3, H).cpu()
            else:
                r = slice(0, xs[0].shape[2])  # the last layer's: the readout row only
                mid_b = base_input(subject, base, "mid", l)[:, r]
                totals.mlps[l] += _dot(xs, mid_b, g_mlps[l][None, :, r])[:, 0].cpu()
            tick(1)


def _exact_effects(subject: Any, metric: Any, base: _Values, src: _Values, totals: _Totals, max_rows: int,
                   tick) -> None:
    """Add the exact effects of one batch to `totals` (metric sums minus the base run's)."""
    H = subject.n_heads
    with torch.no_grad():
        for where, l, xs in sender_inputs(subject, base, src):
            if where == "pre" and l == subject.n_layers:
                sums = torch.cat([logit_receivers(subject, metric, x, tick) for x in xs])
                totals.logits += (sums - base.metric_sum).cpu()
                continue
            lb = layer_base(subject, base, l)
            if where == "mid":
                sums = torch.cat([mlp_receivers(subject, metric, base, lb, l, x, max_rows, tick) for x in xs])
                totals.mlps[l] += (sums - base.metric_sum).cpu()
                continue
            for i, kind in enumerate(KINDS):
                sums = torch.cat([head_receivers(subject, metric, base, lb, l, kind, x,
                                                 [(s, h) for s in range(x.shape[0]) for h in range(H)], max_rows, tick)
                                  for x in xs])
                totals.heads[l][:, i] += (sums - base.metric_sum).view(-1, H).cpu()


def _edge_effects(subject: Any, contrast: Contrast, method: str, direction: str, batch_size: int, steps: int = 8,
                  max_rows: int | None = None, recorded: list[tuple[_Values, _Values]] | None = None
                  ) -> tuple[dict[str, float], float, float]:
    """Unnormalised effect of every edge (mean metric change, signed like importance) and the endpoint means.
    `max_rows`: sequences per expanded forward of `exact` (default `interp.sweep.chunk_rows`, as `patch`: about
    CHUNK_TOKENS tokens on a CPU, sized from free memory on a GPU, so that a layer's sweep is one batch). `recorded`:
    the batches' clean and corrupted sites when already recorded (interp.circuits.evaluation.record_pairs),
    instead of recording them again in batches of `batch_size`."""
    _check_method(method, steps)
    L = subject.n_layers
    max_rows = subject_chunk_rows(subject, contrast.n_pos) if max_rows is None else max_rows
    totals = _Totals(subject)
    n_batches = len(recorded) if recorded is not None else -(-len(contrast) // batch_size)
    if method == "exact":
        total, unit = n_batches * len(all_edges(subject)), "edge"
    else:
        total, unit = n_batches * (2 * L + 1), "layer"
    bar = progress_bar(total=total, desc=f"{method} edge scores {subject.name}", unit=unit)
    tot_base = tot_src = 0.0
    try:
        for cv, rv in recorded if recorded is not None else recorded_batches(subject, contrast, batch_size):
            base, src = (cv, rv) if direction == "noise" else (rv, cv)
            tot_base += base.metric_sum
            tot_src += src.metric_sum
            if method == "exact":
                _exact_effects(subject, contrast.metric, base, src, totals, max_rows, bar.update)
            else:
                _gradient_effects(subject, contrast.metric, base, src, totals, method, steps, bar.update)
    finally:
        bar.close()
    n = len(contrast)
    m_base, m_src = tot_base / n, tot_src / n
    clean, corrupt = (m_base, m_src) if direction == "noise" else (m_src, m_base)
    sign = -1.0 if direction == "noise" else 1.0
    out = {}
    for e, t in totals.named().items():
        if not math.isfinite(t):
            raise FloatingPointError(f"{subject.name}: the score of edge {e} is {t}: a NaN or inf in the receiver's "
                                     "input or gradient; check the model's weights.")
        out[e] = sign * t / n
    return out, clean, corrupt
