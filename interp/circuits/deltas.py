"""The residual streams a circuit run's receivers read (interp.circuits.evaluation): the corrupted run
plus the deltas of their circuit senders, rebuilt layer by layer through the LayerNorms.

A receiver's stream after layer j depends only on which senders of layers <= j it reads (its "prefix"),
so streams are computed once per distinct prefix and kept for the whole run: receivers of later layers
and the MLP and heads of the same layer share them (a trie of prefixes). The rebuild acts on each
position alone, so receivers that read only the readout row (the last layer's queries and MLP, the
classifier) are rebuilt at that row only."""
from __future__ import annotations

from typing import Any

import torch

from interp import engine
from interp.arch import get_linear
from interp.circuits.runs import _Values

ALL = slice(None)
READOUT = slice(engine.READOUT_POS, engine.READOUT_POS + 1)


class _Deltas:
    """Per-layer differences between the circuit run and the corrupted run, in residual-stream units, so
    that a receiver's input is the corrupted value plus its circuit senders' deltas (the output projection
    is linear): `head[l]` (recomputed heads, their deltas stacked with the corrupted attn_out [active + 1,
    B, q, d]) or None (all zero), `mlp[l]` [delta; corrupted mlp_out] [2, B, q, d] or None, `embed`
    [B, pos, d]; `rows[l]` the positions q that layer l's deltas cover (every position, or the readout row
    in the last layer, whose other rows nothing reads)."""

    def __init__(self, subject: Any, clean: _Values, corrupt: _Values):
        self.subject, self.corrupt = subject, corrupt
        self.embed = clean.embed - corrupt.embed                                # [B, pos, d]
        self.attn: list[torch.Tensor] = []   # corrupted attn_out per layer [B, pos, d]
        self.head: list[tuple[list[int], torch.Tensor] | None] = []  # (heads, [deltas; base])
        self.mlp: list[torch.Tensor | None] = []
        self.rows: list[slice] = []
        # prefix streams: (rows is ALL, prefix key) -> (tensor [P, B, q, d], row in it)
        self._streams: dict[tuple[bool, bytes], tuple[torch.Tensor, int]] = {}

    def add_heads(self, layer: int, z_circ: torch.Tensor | None, heads: list[int], rows: slice) -> None:
        """Layer `layer`'s deltas from the circuit-run z [B, q, active, d_head] of `heads` at positions
        `rows`; the other heads keep their corrupted value (delta 0)."""
        self.attn.append(engine.attn_out_of(self.subject, layer, self.corrupt.z[layer]))
        self.rows.append(rows)
        if z_circ is None or not heads:
            self.head.append(None)
            return
        w = get_linear(self.subject.layers[layer], self.subject.arch.o_proj).weight
        W = w.view(w.shape[0], self.subject.n_heads, -1)[:, heads]                 # [d, active, d_head]
        dz = z_circ - self.corrupt.z[layer][:, rows][:, :, heads]                   # [B, q, active, d_head]
        base = self.attn[layer][:, rows]                                          # [B, q, d]
        A = len(heads)
        stacked = torch.empty(A + 1, *base.shape, dtype=base.dtype, device=base.device)  # [active + 1, B, q, d]
        torch.bmm(dz.permute(2, 0, 1, 3).reshape(A, -1, dz.shape[-1]), W.permute(1, 2, 0),
                  out=stacked[:A].view(A, -1, base.shape[-1]))                   # the heads' deltas
        stacked[A] = base
        self.head.append((heads, stacked))

    def add_mlp(self, layer: int, mlp_out: torch.Tensor | None, rows: slice) -> None:
        """Layer `layer`'s MLP delta from its circuit-run output [B, q, d] at positions `rows` (None: not
        recomputed, delta 0)."""
        if mlp_out is None:
            self.mlp.append(None)
            return
        base = self.corrupt.mlp[layer][:, rows]
        stacked = torch.empty(2, *base.shape, dtype=base.dtype, device=base.device)  # [delta; base]
        torch.sub(mlp_out, base, out=stacked[0])
        stacked[1] = base
        self.mlp.append(stacked)

    def _stacked(self, layer: int, stacked: torch.Tensor, rows: slice) -> torch.Tensor:
        """[deltas; base] of layer `layer` at positions `rows` (a subset of those it covers) as a matrix
        [k + 1, B * q * d]."""
        if self.rows[layer] == rows:
            return stacked.view(stacked.shape[0], -1)
        if self.rows[layer] != ALL:
            raise AssertionError(f"layer {layer}'s deltas cover {self.rows[layer]}, not {rows}")
        return stacked[:, :, rows].reshape(stacked.shape[0], -1)

    @staticmethod
    def _plus(x: torch.Tensor, on: torch.Tensor, stacked: torch.Tensor) -> torch.Tensor:
        """x + base + on @ deltas in one pass: x [P, B, q, d], on [P, k], stacked [k + 1, B * q * d] (deltas,
        then base)."""
        flat = torch.addmm(x.reshape(x.shape[0], -1), torch.cat([on, on.new_ones(on.shape[0], 1)], 1), stacked)
        return flat.view(x.shape)

    def _mid(self, layer: int, h: torch.Tensor, on_h: torch.Tensor, rows: slice) -> torch.Tensor:
        """resid_mid of layer `layer` [P, B, q, d] from its input h for rows whose heads are switched on by
        on_h [P, head]."""
        entry = self.head[layer]
        if entry is None:
            x = h + self.attn[layer][:, rows]
        else:
            x = self._plus(h, on_h[:, entry[0]], self._stacked(layer, entry[1], rows))
        return engine.after_sum(self.subject, layer, x, "attn")

    def _step(self, layer: int, h: torch.Tensor, on_h: torch.Tensor, on_m: torch.Tensor, rows: slice
              ) -> torch.Tensor:
        """resid_post of layer `layer` [P, B, q, d] from its input h for rows whose heads and MLP are switched
        on by on_h [P, head], on_m [P]."""
        m = self._mid(layer, h, on_h, rows)
        stacked = self.mlp[layer]
        if stacked is None:
            x = m + self.corrupt.mlp[layer][:, rows]
        else:
            x = self._plus(m, on_m[:, None], self._stacked(layer, stacked, rows))
        return engine.after_sum(self.subject, layer, x, "mlp")


    def inputs(self, on_e: torch.Tensor, on_h: torch.Tensor, on_m: torch.Tensor, stop: int, mid: bool,
               rows: slice = ALL) -> tuple[torch.Tensor, torch.Tensor | None]:
        """resid_pre of layer `stop` (and, with `mid`, its resid_mid) at positions `rows` for K receivers
        whose senders are switched on by on_e [K], on_h [K, stop (+1 with mid), head], on_m [K, stop] (0/1
        floats). Each distinct prefix of senders is computed once per run (see the module doc); the
        receivers' deltas must be those of layers < stop. Returns [K, B, q, d] tensors."""
        H, K = self.subject.n_heads, on_e.shape[0]
        full = rows == ALL
        if not full and rows != READOUT:
            raise ValueError(f"receivers read every position or the readout row, not {rows}")
        per_layer = torch.cat([on_h[:, :stop], on_m[:, :stop, None]], 2)          # [K, stop, head + 1]
        flags = torch.cat([on_e[:, None], per_layer.flatten(1)], 1).cpu().numpy() > 0.5  # [K, 1 + stop * (H + 1)]
        prev: list[bytes] = []
        for depth in range(stop + 1):
            width = 1 + depth * (H + 1)
            keys = [flags[k, :width].tobytes() for k in range(K)]
            todo: dict[bytes, int] = {}  # new prefix -> a receiver that has it
            for k, key in enumerate(keys):
                if key not in todo and self._find(key, full) is None:
                    todo[key] = k
            if todo:
                ks = list(todo.values())
                if depth == 0:
                    e = on_e[ks, None, None, None]
                    new = self.corrupt.embed[None, :, rows] + e * self.embed[None, :, rows]  # [P, B, q, d]
                else:
                    h = self._gather([prev[k] for k in ks], full)
                    new = self._step(depth - 1, h, on_h[ks, depth - 1], on_m[ks, depth - 1], rows)
                for i, key in enumerate(todo):
                    self._streams[(full, key)] = (new, i)
            prev = keys
        h = self._gather(prev, full)
        if not mid:
            return h, None
        return h, self._mid(stop, h, on_h[:, stop], rows)

    def _find(self, key: bytes, full: bool) -> tuple[torch.Tensor, int] | None:
        """The stored stream of a prefix, or None; an all-zero prefix is the corrupted run's stream."""
        hit = self._streams.get((full, key)) or (None if full else self._streams.get((True, key)))
        if hit is None and not any(key):  # the stream of every receiver with no circuit sender so far
            depth = (len(key) - 1) // (self.subject.n_heads + 1)
            c = self.corrupt
            hit = ((c.embed if depth == 0 else c.resid[depth - 1])[None], 0)  # [1, B, pos, d]
            self._streams[(True, key)] = hit
        return hit

    def _gather(self, keys: list[bytes], full: bool) -> torch.Tensor:
        """The streams of `keys` stacked: [len(keys), B, q, d] (readout-only requests slice full streams);
        no copy when they are one stored tensor's rows in order."""
        hits = [self._find(key, full) for key in keys]
        first = hits[0]
        assert first is not None and all(h is not None for h in hits)
        t = first[0]
        sliced = not full and t.shape[2] != 1
        if all(h[0] is t for h in hits if h is not None) and not sliced:
            rows = [h[1] for h in hits if h is not None]
            if rows == list(range(t.shape[0])):
                return t
            return t.index_select(0, torch.tensor(rows, device=t.device))
        out = []
        for hit in hits:
            assert hit is not None
            x = hit[0][hit[1]]
            out.append(x[:, READOUT] if not full and x.shape[1] != 1 else x)
        return torch.stack(out)
