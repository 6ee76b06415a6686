"""`CKAAccumulator`: exact streaming linear CKA of every X layer x every Y layer."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch

from interp.cka.inputs import _CONST_RTOL, ArrayLike, _names_and_mats, as_matrix
from interp.cka.linear_stats import _hsic_from_stats, _hsic_grid, _Side


class CKAAccumulator:
    """Exact streaming linear CKA grid: every X layer x every Y layer, in float64.

    Feed batches with `update(xs, ys)`; each of xs / ys is a mapping name -> `[b, d]` (or a list).
    Per batch: one matmul of the concatenated X layers against the concatenated Y layers
    (`[Dx, b] @ [b, Dy]`), plus per-layer Grams. Memory: O((Dx + Dy)^2), independent of n.
    `ys=None` at construction makes a symmetric accumulator (X vs X only).
    With `self_grids=True` the X-vs-X and Y-vs-Y reference grids are accumulated too (full Grams
    of the concatenations, about 2-3x the work).
    Optional per-example `weights` (non-negative, e.g. bootstrap counts) act as duplication.
    """

    def __init__(self, symmetric: bool = False, self_grids: bool = False):
        self.symmetric = symmetric
        self.self_grids = self_grids or symmetric
        self.n = 0.0
        self.n_rows = 0
        self.x: _Side | None = None
        self.y: _Side | None = None
        self.x_names: list[str] = []
        self.y_names: list[str] = []
        self._ids_seen = 0

    def _init(self, xn: list[str], xm: list[torch.Tensor], yn: list[str] | None, ym: list[torch.Tensor] | None):
        self.x_names = xn
        self.x = _Side([m.shape[1] for m in xm], self.self_grids)
        if ym is not None:
            self.y_names = yn or []
            self.y = _Side([m.shape[1] for m in ym], self.self_grids)
            Dx, Dy, Lx, Ly = self.x.offsets[-1], self.y.offsets[-1], len(xm), len(ym)
            self.c = torch.zeros(Dx, Dy, dtype=torch.float64)  # [Dx, Dy] sum x_i y_i^T
            self.xq = torch.zeros(Dx, Ly, dtype=torch.float64)  # [Dx, Ly] sum x_i q_i
            self.yr = torch.zeros(Dy, Lx, dtype=torch.float64)  # [Dy, Lx] sum y_i r_i
            self.rq = torch.zeros(Lx, Ly, dtype=torch.float64)  # [Lx, Ly] sum r_i q_i

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
        xn, xm = _names_and_mats(xs, "x", convert=False)
        self._check(xn, xm, self.x, self.x_names, "x")
        b = xm[0].shape[0]
        yn = ym = None
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
        xx, r = self.x.prepare(xm, xn, "x")
        self.x.update(xx, r, w)
        if ym is not None:
            yy, q = self.y.prepare(ym, yn, "y")
            self.y.update(yy, q, w)
            xw = xx if w is None else xx * w[:, None]
            rw = r if w is None else r * w[:, None]
            self.c += xw.T @ yy
            self.xq += xw.T @ q
            self.yr += yy.T @ rw
            self.rq += rw.T @ q
        self.n += float(b if w is None else w.sum())
        self.n_rows += b
        return self

    # ---- finalisation -------------------------------------------------------------------------
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
            g = side.gram_block(l, l)
            b = side.block(l)
            var = float(torch.diagonal(g).sum() - side.s[b] @ side.s[b] / self.n)
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

    def _require(self) -> None:
        if self.x is None or self.n < 2:
            raise ValueError("need at least 2 examples before computing CKA")

    def result(self, debiased: bool = False) -> np.ndarray:
        """CKA grid `[Lx, Ly]` (X layers x Y layers); for a symmetric accumulator `[Lx, Lx]`."""
        self._require()
        if self.symmetric:
            return self.self_grid("x", debiased)
        nx = self._norms(self.x, self.x_names, "x", debiased)
        ny = self._norms(self.y, self.y_names, "y", debiased)
        h = _hsic_grid(
            self.c, self.x.s, self.y.s, self.n, self.xq, self.yr, self.rq,
            self.x.rsum, self.y.rsum, self.x.offsets, self.y.offsets, debiased,
        )
        return h / np.outer(nx.numpy(), ny.numpy())

    def self_grid(self, which: Literal["x", "y"] = "x", debiased: bool = False) -> np.ndarray:
        """Reference grid X-vs-X (or Y-vs-Y); needs `self_grids=True`."""
        self._require()
        side, names = (self.x, self.x_names) if which == "x" else (self.y, self.y_names)
        if side is None or not side.full_gram:
            raise ValueError("build the accumulator with self_grids=True for reference grids")
        nrm = self._norms(side, names, which, debiased)
        h = _hsic_grid(
            side.gram, side.s, side.s, self.n, side.xr, side.xr, side.rr,
            side.rsum, side.rsum, side.offsets, side.offsets, debiased,
        )
        out = h / np.outer(nrm.numpy(), nrm.numpy())
        return (out + out.T) / 2  # exact symmetry (the two triangles agree to rounding)
