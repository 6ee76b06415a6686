"""`CKAAccumulator`: exact streaming linear CKA of every X layer x every Y layer."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch

from interp.cka.inputs import _CONST_RTOL, ArrayLike, _names_and_mats, as_matrix
from interp.cka.linear_stats import (
    MIXED_BLOCK_ROWS,
    PROBES,
    _block_sum,
    _hsic_from_stats,
    _hsic_grid,
    _Product,
    _Side,
)
from interp.cka.mixed import mixed_cross_update
from interp.cka.precision import SAFETY, cka_bound, hsic_error

Precision = Literal["float64", "mixed"]


def _fused(p: torch.Tensor | None) -> torch.Tensor:
    """`_Side.update`'s fused product `(x w)^T extra`, present whenever `extra` was given."""
    if p is None:
        raise RuntimeError("_Side.update returned no fused product although `extra` was given")
    return p


class CKAAccumulator:
    """Exact streaming linear CKA grid: every X layer x every Y layer, in float64.

    Feed batches with `update(xs, ys)`; each of xs / ys is a mapping name -> `[b, d]` (or a list).
    Per batch: one matmul of the concatenated X layers against the concatenated Y layers
    (`[Dx, b] @ [b, Dy]`), plus per-layer Grams. Memory: O((Dx + Dy)^2), independent of n.
    `ys=None` at construction makes a symmetric accumulator (X vs X only).
    With `self_grids=True` the X-vs-X and Y-vs-Y reference grids are accumulated too (full Grams
    of the concatenations, about 2-3x the work).
    Optional per-example `weights` (non-negative, e.g. bootstrap counts) act as duplication.

    `precision="float64"` (default, the reference): every product in float64. `"mixed"`: the big
    products in float32 over blocks of `block_rows` rows, added to float64 accumulators; all sums and
    norms stay float64. A cross accumulator without weights or self grids takes each batch in one
    chunked pass (`interp.cka.mixed`: no float64 copy of the batch): about 2x
    faster than float64 on CPUs (float32 has twice the vector width) and more on GPUs; `error_bound()` gives a measured bound on |CKA_mixed - CKA_float64| per cell
    (`interp.cka.precision`). The statistics live on the device of the first batch (a CUDA tensor
    keeps the work on that GPU); results are numpy arrays.
    `biased_only=True`: only biased CKA will be asked for, so the chunked mixed pass skips the row-norm
    statistics of debiased CKA (about a tenth of its time); debiased results then raise.
    """

    def __init__(self, symmetric: bool = False, self_grids: bool = False, precision: Precision = "float64",
                 block_rows: int = MIXED_BLOCK_ROWS, biased_only: bool = False):
        if precision not in ("float64", "mixed"):
            raise ValueError(f"precision must be 'float64' or 'mixed' (cka_grid also takes 'auto'), not {precision!r}")
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        self.precision = precision
        self.block_rows = block_rows
        self.biased_only = biased_only
        self.symmetric = symmetric
        self.self_grids = self_grids or symmetric
        self.n = 0.0
        self.n_rows = 0
        self.x: _Side | None = None
        self.y: _Side | None = None
        self.x_names: list[str] = []
        self.y_names: list[str] = []
        self._ids_seen = 0

    def _init(self, xn: list[str], xm: list[torch.Tensor], yn: list[str] | None,
              ym: list[torch.Tensor] | None) -> None:
        self.x_names = xn
        dev = xm[0].device
        mixed = self.precision == "mixed"
        x = _Side([m.shape[1] for m in xm], self.self_grids, device=dev, mixed=mixed, block_rows=self.block_rows,
                  seed=0)
        self.x = x
        if ym is not None:
            self.y_names = yn or []
            y = _Side([m.shape[1] for m in ym], self.self_grids, device=dev, mixed=mixed, block_rows=self.block_rows,
                      seed=1)
            self.y = y
            Dx, Dy, Lx, Ly = x.offsets[-1], y.offsets[-1], len(xm), len(ym)
            self._c = _Product(Dx, Dy, dev, x.block_rows)  # [Dx, Dy] sum x_i y_i^T
            self.xq = torch.zeros(Dx, Ly, dtype=torch.float64, device=dev)  # [Dx, Ly] sum x_i q_i
            self.yr = torch.zeros(Dy, Lx, dtype=torch.float64, device=dev)  # [Dy, Lx] sum y_i r_i
            self.rq = torch.zeros(Lx, Ly, dtype=torch.float64, device=dev)  # [Lx, Ly] sum r_i q_i
            if mixed:
                # [Dx, K] sum x_i (y_i V), V [Dy, K] every Y layer's probes stacked (`_Side.vstack`)
                self.pc = torch.zeros(Dx, PROBES, dtype=torch.float64, device=dev)

    @staticmethod
    def _check(names: list[str], mats: list[torch.Tensor], side: _Side | None, known: list[str], label: str) -> None:
        n0 = mats[0].shape[0]
        for nm, m in zip(names, mats):
            if m.shape[0] != n0:
                raise ValueError(f"{label}[{nm!r}] has {m.shape[0]} rows, other layers have {n0}")
        if side is not None:
            if names != known:
                raise ValueError(f"{label}: layer names changed between batches ({known} -> {names})")
            if [m.shape[1] for m in mats] != side.widths:
                raise ValueError(f"{label}: widths changed between batches")

    def update(
        self,
        xs: Mapping[str, ArrayLike] | Sequence[ArrayLike] | ArrayLike,
        ys: Mapping[str, ArrayLike] | Sequence[ArrayLike] | ArrayLike | None = None,
        ids_x: Sequence | None = None,
        ids_y: Sequence | None = None,
        weights: ArrayLike | None = None,
    ) -> CKAAccumulator:
        """Add one batch: every layer of xs (and ys) holds the same `b` examples in the same order."""
        xn, xm = _names_and_mats(xs, "x", convert=False)
        self._check(xn, xm, self.x, self.x_names, "x")
        b = xm[0].shape[0]
        yn: list[str] | None = None
        ym: list[torch.Tensor] | None = None
        if self.symmetric:
            if ys is not None:
                raise ValueError("symmetric accumulator takes xs only")
        else:
            if ys is None:
                raise ValueError("ys is required (or build CKAAccumulator(symmetric=True))")
            yn, ym = _names_and_mats(ys, "y", convert=False)
            self._check(yn, ym, self.y, self.y_names, "y")
            if ym[0].shape[0] != b:
                raise ValueError(f"mismatched n: x batch has {b} rows, y batch has {ym[0].shape[0]}")
        if ids_x is not None or ids_y is not None:
            if ids_x is None or ids_y is None:
                raise ValueError("give both ids_x and ids_y, or neither")
            ix, iy = [str(i) for i in ids_x], [str(i) for i in ids_y]
            if len(ix) != b or len(iy) != b:
                raise ValueError(f"ids: {len(ix)} / {len(iy)} ids for a batch of {b} rows")
            if ix != iy:
                k = next(i for i, (a, c) in enumerate(zip(ix, iy)) if a != c)
                raise ValueError(
                    f"misaligned examples: row {self.n_rows + k} is {ix[k]!r} in x but {iy[k]!r} in y; "
                    "align both representations on the same example order"
                )
        w = None
        if weights is not None:
            w = as_matrix(weights, "weights").reshape(-1)
            if w.shape[0] != b or bool((w < 0).any()):
                raise ValueError("weights must be non-negative with one entry per row")
        if self.x is None:
            self._init(xn, xm, yn, ym)
        x, y = self._sides()
        if self.precision == "mixed" and y is not None and ym is not None and yn is not None \
                and w is None and not self.self_grids:
            mixed_cross_update(self, x, y, xm, ym, xn, yn)  # chunked, no float64 copy of the batch
            self.n += float(b)
            self.n_rows += b
            return self
        if w is not None:
            w = w.to(x.device)
        xx, r = x.prepare(xm, xn, "x")
        x_op = x.operand(xx)
        xw_op = x_op if w is None else x.operand(xx * w[:, None])
        if y is None or ym is None or yn is None:  # symmetric: X vs X only (all three None together)
            x.update(xx, r, w, x_op, xw_op)
        else:
            yy, q = y.prepare(ym, yn, "y")
            y_op = y.operand(yy)
            yw_op = y_op if w is None else y.operand(yy * w[:, None])
            self._c.add(xw_op, y_op)  # one [Dx, b] @ [b, Dy] product for the whole grid
            mixed = self.precision == "mixed"
            extra = torch.cat([q, yy @ y.vstack], 1) if mixed else q  # [b, Ly (+ K)]
            px = _fused(x.update(xx, r, w, x_op, xw_op, extra))  # [Dx, Ly (+ Ly*K)]
            self.xq += px[:, : q.shape[1]]  # sum_i w_i x_i q_i
            if mixed:
                self.pc += px[:, q.shape[1] :]  # sum_i w_i x_i (y_i V)
            self.yr += _fused(y.update(yy, q, w, y_op, yw_op, r))  # sum_i w_i y_i r_i
            self.rq += (r if w is None else r * w[:, None]).T @ q
        self.n += float(b if w is None else w.sum())
        self.n_rows += b
        return self

    def _sides(self) -> tuple[_Side, _Side | None]:
        """The X side and the Y side (None for a symmetric accumulator), once a batch has been added."""
        if self.x is None:
            raise ValueError("no batch added yet")
        return self.x, self.y

    @property
    def c(self) -> torch.Tensor:
        """[Dx, Dy] float64 sum of x_i y_i^T (shifted rows), every pending float32 block added."""
        return self._c.value()

    # ---- finalisation (on CPU copies of the statistics; results are numpy) ----------------------
    def _cpu(self) -> tuple[_Side, _Side | None, dict[str, torch.Tensor]]:
        x, y = self._sides()
        cross = {} if y is None else {k: getattr(self, k).cpu() for k in ("c", "xq", "yr", "rq")}
        if y is not None and self.precision == "mixed":
            cross["pc"] = self.pc.cpu()
        return x.cpu(), None if y is None else y.cpu(), cross

    def _cross_cpu(self) -> tuple[_Side, _Side, dict[str, torch.Tensor]]:
        """`_cpu()` of a two-sided accumulator (X vs Y)."""
        x, y, st = self._cpu()
        if y is None:
            raise ValueError("a symmetric accumulator has no X-vs-Y grid; use self_grid('x')")
        return x, y, st

    def _grid_h(self, which: Literal["xy", "x", "y"], debiased: bool) -> np.ndarray:
        """HSIC grid `[Lx, Ly]` ("xy") or self grid ("x" / "y") from the current statistics."""
        if which == "xy":
            x, y, st = self._cross_cpu()
            return _hsic_grid(st["c"], x.s, y.s, self.n, st["xq"], st["yr"], st["rq"], x.rsum, y.rsum,
                              x.offsets, y.offsets, debiased)
        side, _ = self._self_side(which)
        return _hsic_grid(side.gram, side.s, side.s, self.n, side.xr, side.xr, side.rr,
                          side.rsum, side.rsum, side.offsets, side.offsets, debiased)

    def _self_hsic(self, side: _Side, k: int, l: int, debiased: bool) -> float:
        bk, bl = side.block(k), side.block(l)
        return _hsic_from_stats(
            side.gram_block(k, l), side.s[bk], side.s[bl], self.n,
            side.xr[bk, l], side.xr[bl, k], float(side.rr[k, l]),
            float(side.rsum[k]), float(side.rsum[l]), debiased,
        )

    def _norms(self, side: _Side, names: list[str], label: str, debiased: bool) -> torch.Tensor:
        out = torch.empty(len(side.widths), dtype=torch.float64)
        for l in range(len(side.widths)):
            # zero-variance check on the biased centred trace (same for both estimators)
            g = side.gram_block(l, l).numpy()
            sl = side.s[side.block(l)].numpy()
            var = float(np.trace(g) - sl @ sl / self.n)
            if not var > _CONST_RTOL * side.raw_ss(l, self.n):
                raise ValueError(
                    f"{label}[{names[l]!r}] is constant across examples (zero variance): CKA is undefined"
                )
            h = self._self_hsic(side, l, l, debiased)
            if not h > 0:
                raise ValueError(
                    f"{label}[{names[l]!r}]: non-positive self-HSIC ({h:.3g}); too few examples for debiased CKA"
                )
            out[l] = math.sqrt(h)
        return out

    def _require(self, debiased: bool = False) -> None:
        if self.x is None or self.n < 2:
            raise ValueError("need at least 2 examples before computing CKA")
        if debiased and self.biased_only:
            raise ValueError("this accumulator was built with biased_only=True: no debiased CKA")

    def result(self, debiased: bool = False) -> np.ndarray:
        """CKA grid `[Lx, Ly]` (X layers x Y layers); for a symmetric accumulator `[Lx, Lx]`."""
        self._require(debiased)
        if self.symmetric:
            return self.self_grid("x", debiased)
        return self._cross_result(debiased)[0]

    def _cross_result(self, debiased: bool) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
        """CKA grid `[Lx, Ly]`, its HSIC grid and the self-HSIC roots `[Lx]`, `[Ly]` of the cross grid."""
        x, y, _ = self._cross_cpu()
        nx = self._norms(x, self.x_names, "x", debiased)
        ny = self._norms(y, self.y_names, "y", debiased)
        h = self._grid_h("xy", debiased)
        return h / np.outer(nx.numpy(), ny.numpy()), h, nx, ny

    def result_with_bound(self, debiased: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """`(result(debiased), error_bound(debiased))` of a mixed cross accumulator, sharing the HSIC
        grid and the self-HSIC values between them (what `cka_grid` uses)."""
        self._check_bound(debiased)
        if self.symmetric:
            return self.self_grid("x", debiased), self.error_bound(debiased, "x")
        out, h, nx, ny = self._cross_result(debiased)
        return out, self._cross_bound(debiased, h, nx.numpy() ** 2, ny.numpy() ** 2)

    def _self_side(self, which: Literal["x", "y"]) -> tuple[_Side, list[str]]:
        self._require()
        x, y, _ = self._cpu()
        side, names = (x, self.x_names) if which == "x" else (y, self.y_names)
        if side is None or not side.full_gram:
            raise ValueError("build the accumulator with self_grids=True for reference grids")
        return side, names

    def self_grid(self, which: Literal["x", "y"] = "x", debiased: bool = False) -> np.ndarray:
        """Reference grid X-vs-X (or Y-vs-Y); needs `self_grids=True`."""
        self._require(debiased)
        side, names = self._self_side(which)
        nrm = self._norms(side, names, which, debiased)
        out = self._grid_h(which, debiased) / np.outer(nrm.numpy(), nrm.numpy())
        return (out + out.T) / 2  # exact symmetry (the two triangles agree to rounding)

    # ---- mixed precision: measured error bound ---------------------------------------------------
    def _cell_dh(self, c: torch.Tensor, resid: list[torch.Tensor], sx: torch.Tensor, sy: torch.Tensor,
                 offx: list[int], offy: list[int], debiased: bool, h: np.ndarray | None = None) -> np.ndarray:
        """HSIC error bounds `[Lx, Ly]` of every cell of a product c `[Dx, Dy]` (blocks at the offsets),
        given probe residuals `(C_hat - C)[:, cols] V` `[Dx, K]`, one per column group: a Y layer (Grams), or
        all Y layers at once (cross product: each cell is then bounded by its whole row block). Biased HSIC is
        ||C_c||^2 per cell, so its grid `h` (when given) supplies the norms without another pass."""
        sxn, syn = sx.numpy(), sy.numpy()
        if not debiased and h is not None:
            nc = np.sqrt(np.clip(h, 0.0, None))
        else:
            cn = c.numpy()
            if not debiased:
                cn = cn - np.outer(sxn, syn) / self.n
            nc = np.sqrt(_block_sum(torch.from_numpy(cn * cn), offx, offy))  # [Lx, Ly] ||C_cell||_F
        ex = np.stack([np.sqrt(np.add.reduceat((r.numpy() ** 2).sum(1), offx[:-1])) for r in resid], 1)
        e = SAFETY * ex / math.sqrt(PROBES)  # [Lx, Ly] bounds on ||C_hat - C||_F per cell
        nsx = np.sqrt(np.add.reduceat(sxn * sxn, offx[:-1]))[:, None]
        nsy = np.sqrt(np.add.reduceat(syn * syn, offy[:-1]))[None, :]
        return hsic_error(nc, e, self.n, debiased, nsx, nsy)

    @staticmethod
    def _gram_resid(side: _Side) -> list[torch.Tensor]:
        """Per layer l the probe residual of Gram column block l, `[D, K]` (full Gram) or `[d_l, K]`."""
        if side.full_gram:
            return [side.gram_column_error(l) for l in range(len(side.probes))]
        return [side.gram_error(l, l) for l in range(len(side.widths))]

    def _self_dh(self, side: _Side, debiased: bool, hs: np.ndarray | None = None) -> np.ndarray:
        """[L] HSIC error bounds of each layer's self-HSIC (`hs` [L]: the biased self-HSICs, if known)."""
        res = self._gram_resid(side)
        out = []
        for l in range(len(side.widths)):
            b = side.block(l)
            r = res[l][b] if side.full_gram else res[l]
            g = side.gram_block(l, l)
            h = None if hs is None else hs[l : l + 1, None]  # [1, 1]
            dh = self._cell_dh(g, [r], side.s[b], side.s[b], [0, g.shape[0]], [0, g.shape[1]], debiased, h)
            out.append(float(dh[0, 0]))
        return np.array(out)

    def error_bound(self, debiased: bool = False, which: Literal["xy", "x", "y"] = "xy") -> np.ndarray:
        """Bound on |CKA_mixed - CKA_exact| for every cell of `result(debiased)` (`which="xy"`) or of
        `self_grid(which, debiased)`; it fails with probability <= 1.2e-8 per cell over the random
        probes (`interp.cka.precision`). Only for `precision="mixed"` (float64 is the reference)."""
        self._check_bound(debiased)
        if which == "xy" and self.symmetric:
            which = "x"
        if which != "xy":
            side, _ = self._self_side(which)
            h = self._grid_h(which, debiased)
            dh = self._cell_dh(side.gram, self._gram_resid(side), side.s, side.s, side.offsets, side.offsets,
                               debiased, h)
            hs, dhs = np.diag(h), np.diag(dh)
            return cka_bound(h, dh, hs[:, None], dhs[:, None], hs[None, :], dhs[None, :])
        _, h, nx, ny = self._cross_result(debiased)
        return self._cross_bound(debiased, h, nx.numpy() ** 2, ny.numpy() ** 2)

    def _check_bound(self, debiased: bool) -> None:
        if self.precision != "mixed":
            raise ValueError("error_bound() is measured for precision='mixed' only; float64 is the reference")
        self._require(debiased)

    def _cross_bound(self, debiased: bool, h: np.ndarray, hx: np.ndarray, hy: np.ndarray) -> np.ndarray:
        """`error_bound` of the cross grid from its HSIC grid h `[Lx, Ly]` and self-HSICs hx `[Lx]`, hy `[Ly]`."""
        x, y, st = self._cross_cpu()
        resid = [st["c"] @ y.vstack - st["pc"]]  # (C_hat - C) V, [Dx, K]: bounds each row block of layers
        dh = self._cell_dh(st["c"], resid, x.s, y.s, x.offsets, y.offsets, debiased, h)
        return cka_bound(h, dh, hx[:, None], self._self_dh(x, debiased, hx)[:, None],
                         hy[None, :], self._self_dh(y, debiased, hy)[None, :])
