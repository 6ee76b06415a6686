"""Centred kernel alignment (CKA) between representations.

Everything works on plain `[n, d]` tensors / arrays or on iterables of batches; nothing here knows
about models. Grids also take anything with `.acts` (site -> [n, d]) and `.ids`, i.e. a
`interp.capture.Capture`, and return a labelled `CKAGrid`: `cka_grid(capture_a, capture_b)`.

* Linear CKA (Kornblith et al. 2019), feature form, accumulated exactly in float64 over any number
  of batches (`CKAAccumulator`): memory is O(d^2) per pair, independent of n. Biased and debiased
  (unbiased HSIC_1, Song et al. 2012) come out of the same accumulated statistics.
* Grids: every X layer x every Y layer in one pass (one cross-product matmul per batch on the
  concatenated layers), optionally with the X-vs-X and Y-vs-Y reference grids.
* RBF CKA with the median-distance bandwidth, exact and chunked over rows (n = 10,000 fits in a few
  hundred MB); `rbf_cka_nystrom` is the documented approximation for larger n.
* Minibatch CKA (Nguyen et al. 2021): per-batch HSIC_1 summed before normalising.

Numerical conventions (documented behaviour, tested):
* All accumulation is float64. Each side is shifted by the mean of its first batch before
  accumulating (CKA is translation invariant, so the shift is exact); this keeps inputs with a large
  common offset (e.g. 1e6) from cancelling catastrophically.
* A constant column is fine: it carries no variance and contributes nothing after centring (CKA is
  the same as with the column dropped). An all-constant representation has zero variance and CKA
  is undefined: `ValueError`.
* NaN / inf inputs, mismatched n, misaligned example ids and 3-D input without pooling: `ValueError`.
* Results are never clamped; debiased CKA can be slightly negative for unrelated data.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray
Kernel = Literal["linear", "rbf"]

__all__ = [
    "as_matrix",
    "CKAAccumulator",
    "linear_cka",
    "cka_grid",
    "CKAGrid",
    "head_cka_grid",
    "constant_heads",
    "median_sq_distance",
    "rbf_cka",
    "rbf_cka_grid",
    "nystrom_features",
    "rbf_cka_nystrom",
    "hsic1_grams",
    "MinibatchCKA",
    "minibatch_cka",
]

# An (almost) all-constant representation: centred variance below this fraction of the raw mean
# square cannot be told apart from rounding noise in float64.
_CONST_RTOL = 1e-20


def as_matrix(x: ArrayLike, name: str = "x", allow_3d: bool = False, convert: bool = True) -> torch.Tensor:
    """Validate and convert a representation to a float64 torch tensor `[n, d]` (or `[n, h, d]`).

    Raises `ValueError` for 3-D input (unless `allow_3d`), for 1-D / empty input and for NaN / inf.
    `convert=False` checks the shape only and keeps the dtype (the accumulator converts and checks
    finiteness itself, in one pass).
    """
    t = torch.as_tensor(x)
    if t.is_complex() or not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name}: expected a real numeric array, got dtype {t.dtype}")
    if t.ndim == 3 and not allow_3d:
        raise ValueError(
            f"{name}: got a 3-D array {tuple(t.shape)} (e.g. [n, pos, d]); CKA needs one vector per "
            "example. Choose a pooling first (capture(..., pool='cls' | 'mean')), or use "
            "head_cka_grid for [n, head, d_head]."
        )
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim not in ((2, 3) if allow_3d else (2,)):
        raise ValueError(f"{name}: expected a 2-D array [n, d], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[-1] == 0:
        raise ValueError(f"{name}: empty array of shape {tuple(t.shape)}")
    if not convert:
        return t.detach().cpu()
    t = t.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: contains {bad} NaN/inf values; CKA needs finite inputs")
    return t


def _acts(xs: object) -> object:
    """A Capture's `.acts` (site -> [n, d]); anything else unchanged."""
    acts = getattr(xs, "acts", None)
    return acts if isinstance(acts, Mapping) and hasattr(xs, "ids") else xs


def _check_ids(xs: object, ys: object) -> None:
    """Two Captures must hold the same examples in the same order."""
    ix, iy = getattr(xs, "ids", None), getattr(ys, "ids", None)
    if ix is not None and iy is not None and list(ix) != list(iy):
        first = next((i for i, (a, b) in enumerate(zip(ix, iy)) if a != b), min(len(ix), len(iy)))
        raise ValueError(f"The two captures hold different examples (first difference at row {first} of "
                         f"{len(ix)} / {len(iy)}): capture both models on the same data.")


def _names_and_mats(
    xs: Mapping[str, ArrayLike] | Sequence[ArrayLike] | ArrayLike, side: str, convert: bool = True
) -> tuple[list[str], list[torch.Tensor]]:
    xs = _acts(xs)  # type: ignore[assignment]
    if isinstance(xs, Mapping):
        names = [str(k) for k in xs]
        mats = [as_matrix(v, f"{side}[{k!r}]", convert=convert) for k, v in xs.items()]
    elif isinstance(xs, (torch.Tensor, np.ndarray)):
        names, mats = ["0"], [as_matrix(xs, side, convert=convert)]
    else:
        mats = [as_matrix(v, f"{side}[{i}]", convert=convert) for i, v in enumerate(xs)]
        names = [str(i) for i in range(len(mats))]
    if not mats:
        raise ValueError(f"{side}: no representations given")
    return names, mats


class _Side:
    """Float64 sufficient statistics of one set of layers (one side of a grid)."""

    def __init__(self, widths: list[int], full_gram: bool):
        self.widths = widths
        self.offsets = np.concatenate([[0], np.cumsum(widths)]).tolist()
        self.full_gram = full_gram
        D, L = self.offsets[-1], len(widths)
        self.shift: torch.Tensor | None = None  # [D] mean of the first batch
        self.s = torch.zeros(D, dtype=torch.float64)  # [D] sum of shifted rows
        if full_gram:
            self.gram = torch.zeros(D, D, dtype=torch.float64)  # [D, D]
        else:
            self.grams = [torch.zeros(d, d, dtype=torch.float64) for d in widths]  # [d_l, d_l]
        self.xr = torch.zeros(D, L, dtype=torch.float64)  # [D, L] sum_i x_i r_i^(l)
        self.rr = torch.zeros(L, L, dtype=torch.float64)  # [L, L] sum_i r_i^(k) r_i^(l)
        self.rsum = torch.zeros(L, dtype=torch.float64)  # [L] sum_i r_i

    def block(self, l: int) -> slice:
        return slice(self.offsets[l], self.offsets[l + 1])

    def gram_block(self, k: int, l: int) -> torch.Tensor:
        if self.full_gram:
            return self.gram[self.block(k), self.block(l)]
        if k != l:
            raise RuntimeError("self grids need full_gram=True")
        return self.grams[k]

    def prepare(self, mats: list[torch.Tensor], names: list[str], label: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Shifted float64 concatenation `[b, D]` and per-layer squared row norms `[b, L]`.

        One conversion pass per layer; NaN / inf show up in the row norms (checked per layer)."""
        b = mats[0].shape[0]
        x = torch.empty(b, self.offsets[-1], dtype=torch.float64)  # [b, D]
        for l, m in enumerate(mats):
            x[:, self.block(l)] = m
        if self.shift is None:
            self.shift = x.mean(0)
            if not bool(torch.isfinite(self.shift).all()):
                self.shift = torch.nan_to_num(self.shift, nan=0.0, posinf=0.0, neginf=0.0)
        x -= self.shift
        r = torch.stack([torch.linalg.vector_norm(x[:, self.block(l)], dim=1) for l in range(len(mats))], 1) ** 2
        bad = ~torch.isfinite(r.sum(0))  # [L]
        if bool(bad.any()):
            l = int(torch.nonzero(bad)[0])
            raise ValueError(f"{label}[{names[l]!r}]: contains NaN/inf values; CKA needs finite inputs")
        return x, r

    def raw_ss(self, l: int, n: float) -> float:
        """Sum over examples of the squared raw (unshifted) norm of layer l, from the accumulators."""
        blk, mu = self.block(l), self.shift[self.block(l)]
        return float(self.rsum[l] + 2 * mu @ self.s[blk] + n * mu @ mu)

    def update(self, x: torch.Tensor, r: torch.Tensor, w: torch.Tensor | None) -> None:
        xw = x if w is None else x * w[:, None]  # [b, D]
        rw = r if w is None else r * w[:, None]  # [b, L]
        self.s += xw.sum(0)
        if self.full_gram:
            self.gram += xw.T @ x
        else:
            for l, g in enumerate(self.grams):
                b = self.block(l)
                g += xw[:, b].T @ x[:, b]
        self.xr += xw.T @ r
        self.rr += rw.T @ r
        self.rsum += rw.sum(0)


def _hsic_from_stats(
    c: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, n: float,
    xq: torch.Tensor, yr: torch.Tensor, rq: float, rx: float, ry: float, debiased: bool,
) -> float:
    """HSIC (up to a factor common to a CKA ratio) from feature-form statistics of one pair.

    c = X^T Y [dx, dy], sx / sy column sums, xq = X^T q, yr = Y^T r (r, q squared row norms),
    rq = r.q, rx = sum r, ry = sum q; X, Y shifted but not centred (both forms are translation
    invariant). Biased: ||X_c^T Y_c||_F^2. Debiased: HSIC_1 of Song et al. (2012), with the
    linear-kernel Gram sums written in feature form.
    """
    if not debiased:
        cc = c - torch.outer(sx, sy) / n
        return float((cc * cc).sum())
    if n < 4:
        raise ValueError(f"debiased CKA needs n >= 4 examples, got {n:g}")
    tr = float((c * c).sum()) - rq  # tr(K~ L~)
    kx = float(sx @ sx) - rx  # 1^T K~ 1
    ky = float(sy @ sy) - ry  # 1^T L~ 1
    kl1 = float(sx @ c @ sy) - float(sx @ xq) - float(sy @ yr) + rq  # 1^T K~ L~ 1
    return (tr + kx * ky / ((n - 1) * (n - 2)) - 2.0 * kl1 / (n - 2)) / (n * (n - 3))


def _block_sum(a: torch.Tensor, offx: list[int], offy: list[int]) -> np.ndarray:
    """Sums of the blocks of `a [Dx, Dy]` cut at the layer offsets -> `[Lx, Ly]`."""
    a = a.numpy()
    return np.add.reduceat(np.add.reduceat(a, offx[:-1], axis=0), offy[:-1], axis=1)


def _hsic_grid(
    c: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, n: float, xq: torch.Tensor, yr: torch.Tensor,
    rq: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor, offx: list[int], offy: list[int], debiased: bool,
) -> np.ndarray:
    """`_hsic_from_stats` for every (X layer, Y layer) pair at once: c `[Dx, Dy]`, xq `[Dx, Ly]`,
    yr `[Dy, Lx]`, rq `[Lx, Ly]`, rx `[Lx]`, ry `[Ly]` -> `[Lx, Ly]`."""
    if not debiased:
        cc = c - torch.outer(sx, sy) / n
        return _block_sum(cc * cc, offx, offy)
    if n < 4:
        raise ValueError(f"debiased CKA needs n >= 4 examples, got {n:g}")
    rq = rq.numpy()
    tr = _block_sum(c * c, offx, offy) - rq
    kx = _block_sum((sx * sx)[:, None], offx, [0, 1])[:, 0] - rx.numpy()  # [Lx]
    ky = _block_sum((sy * sy)[:, None], offy, [0, 1])[:, 0] - ry.numpy()  # [Ly]
    sxcsy = _block_sum(c * torch.outer(sx, sy), offx, offy)
    sxxq = _block_sum(sx[:, None] * xq, offx, list(range(xq.shape[1] + 1)))
    syyr = _block_sum(sy[:, None] * yr, offy, list(range(yr.shape[1] + 1))).T
    kl1 = sxcsy - sxxq - syyr + rq
    return (tr + np.outer(kx, ky) / ((n - 1) * (n - 2)) - 2.0 * kl1 / (n - 2)) / (n * (n - 3))


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


def _batched(mats: list[torch.Tensor], batch_size: int) -> Iterable[list[torch.Tensor]]:
    n = mats[0].shape[0]
    for i in range(0, n, batch_size):
        yield [m[i : i + batch_size] for m in mats]


def _rows_per_batch(width: int, budget_bytes: float = 256e6) -> int:
    return max(64, int(budget_bytes // (8 * max(width, 1))))


def linear_cka(x: ArrayLike, y: ArrayLike, debiased: bool = False) -> float:
    """Linear CKA of `x [n, d1]` and `y [n, d2]` (feature form, float64). `debiased` uses HSIC_1."""
    x, y = as_matrix(x, "x"), as_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"mismatched n: x has {x.shape[0]} rows, y has {y.shape[0]}")
    acc = CKAAccumulator()
    for xb, yb in zip(*(_batched([m], _rows_per_batch(x.shape[1] + y.shape[1])) for m in (x, y))):
        acc.update(xb, yb)
    return float(acc.result(debiased)[0, 0])


class CKAGrid(dict):
    """A CKA grid with its labels: `grid.grid` is [Lx, Ly] (rows `x_labels`, columns `y_labels`).

    It is also the dict older code expects ({"xy": ..., "xx": ..., "yy": ...}) and an array
    (`np.asarray(grid)`); `grid[x_label, y_label]` is one value; `grid.plot()` a matplotlib Figure.
    """

    def __init__(self, grids: Mapping[str, np.ndarray], x_labels: Sequence[str], y_labels: Sequence[str]):
        super().__init__(grids)
        self.x_labels = list(x_labels)
        self.y_labels = list(y_labels)

    @property
    def grid(self) -> np.ndarray:
        """[Lx, Ly]: the cross grid ("xy"), or the self grid ("xx") when only one side was given."""
        return dict.__getitem__(self, "xy" if "xy" in self else "xx")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.grid.shape

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return np.asarray(self.grid, dtype=dtype)

    def __getitem__(self, key: str | tuple[str, str]) -> np.ndarray | float:
        if isinstance(key, tuple):
            x, y = key
            return float(self.grid[self.x_labels.index(x), self.y_labels.index(y)])
        return dict.__getitem__(self, key)

    def plot(self, title: str = "linear CKA", layer_map: Mapping[int, int] | None = None):
        """Heatmap (rows: x, columns: y) as a `matplotlib.figure.Figure` (shown inline in a notebook)."""
        from interp.plot.cka import cka_figure

        return cka_figure(self.grid, _short(self.x_labels), _short(self.y_labels), layer_map, title)

    def __repr__(self) -> str:
        w = max(len(s) for s in _short(self.x_labels))
        head = " " * w + "  " + " ".join(f"{s[:6]:>6}" for s in _short(self.y_labels))
        rows = [f"{s:>{w}}  " + " ".join(f"{v:6.3f}" for v in row) for s, row in zip(_short(self.x_labels), self.grid)]
        return "CKAGrid(\n" + "\n".join([head, *rows]) + "\n)"


def _short(labels: Sequence[str]) -> list[str]:
    """"blocks.3.hook_resid_post" -> "3" when every label is one kind of site over layers; else unchanged."""
    parts = [s.split(".", 2) for s in labels]
    if all(len(p) == 3 and p[0] == "blocks" for p in parts) and len({p[2] for p in parts}) == 1:
        return [p[1] for p in parts]
    return list(labels)


def cka_grid(
    xs: Mapping[str, ArrayLike] | Sequence[ArrayLike] | object,
    ys: Mapping[str, ArrayLike] | Sequence[ArrayLike] | object | None = None,
    debiased: bool = False,
    self_grids: bool = False,
    batch_size: int | None = None,
) -> CKAGrid:
    """Linear CKA grid of in-memory layers, computed in one pass of row batches.

    `xs`, `ys`: {name: [n, d]}, a list of [n, d], or a Capture (pooled; both captures on the same ids).
    Returns a `CKAGrid` labelled by layer name: `.grid` [Lx, Ly]; as a dict {"xy": [Lx, Ly]} and, with
    `self_grids` (or `ys=None`), "xx" [Lx, Lx] / "yy" [Ly, Ly].
    """
    _check_ids(xs, ys)
    xn, xm = _names_and_mats(xs, "x")
    acc = CKAAccumulator(symmetric=ys is None, self_grids=self_grids)
    width = sum(m.shape[1] for m in xm)
    if ys is None:
        bs = batch_size or _rows_per_batch(width)
        for xb in _batched(xm, bs):
            acc.update(dict(zip(xn, xb)))
        return CKAGrid({"xx": acc.result(debiased)}, xn, xn)
    yn, ym = _names_and_mats(ys, "y")
    if xm[0].shape[0] != ym[0].shape[0]:
        raise ValueError(f"mismatched n: x has {xm[0].shape[0]} rows, y has {ym[0].shape[0]}")
    bs = batch_size or _rows_per_batch(width + sum(m.shape[1] for m in ym))
    for xb, yb in zip(_batched(xm, bs), _batched(ym, bs)):
        acc.update(dict(zip(xn, xb)), dict(zip(yn, yb)))
    out = {"xy": acc.result(debiased)}
    if self_grids:
        out["xx"] = acc.self_grid("x", debiased)
        out["yy"] = acc.self_grid("y", debiased)
    return CKAGrid(out, xn, yn)


def constant_heads(z: ArrayLike, name: str = "z") -> list[int]:
    """Heads of `z [n, head, d_head]` with zero variance across examples (e.g. a zeroed value projection):
    CKA with them is undefined. Same criterion as the accumulator's zero-variance check."""
    z = as_matrix(z, name, allow_3d=True)
    if z.ndim != 3:
        raise ValueError(f"{name}: expected [n, head, d_head], got {tuple(z.shape)}")
    var = ((z - z.mean(0)) ** 2).sum((0, 2))  # [head] centred
    raw = (z * z).sum((0, 2))  # [head]
    return [h for h in range(z.shape[1]) if not var[h] > _CONST_RTOL * raw[h]]


def head_cka_grid(zx: ArrayLike, zy: ArrayLike | None = None, debiased: bool = False,
                  constant: Literal["raise", "nan"] = "raise") -> np.ndarray:
    """Per-head CKA from pooled per-head z: `zx [n, Hx, dx]` x `zy [n, Hy, dy]` -> `[Hx, Hy]`.

    With `zy=None`, the head x head grid of `zx` against itself. A head with zero variance across
    examples (`constant_heads`) raises a `ValueError` naming it, or with `constant="nan"` gets NaN in
    its row / column.
    """
    if constant not in ("raise", "nan"):
        raise ValueError(f"constant must be 'raise' or 'nan', not {constant!r}")
    zx = as_matrix(zx, "zx", allow_3d=True)
    zy = None if zy is None else as_matrix(zy, "zy", allow_3d=True)
    dead = {k: constant_heads(v, k) for k, v in (("zx", zx), ("zy", zy)) if v is not None}
    if constant == "raise":
        for k, heads in dead.items():
            if heads:
                raise ValueError(f"{k}: head {heads[0]} is constant across examples (zero variance): CKA is "
                                 "undefined. Pass constant='nan' to get NaN for such heads.")
    live_x = [h for h in range(zx.shape[1]) if h not in dead["zx"]]
    xs = [zx[:, h] for h in live_x]
    if zy is None:
        out = np.full((zx.shape[1], zx.shape[1]), np.nan)
        if xs:
            out[np.ix_(live_x, live_x)] = cka_grid(xs, None, debiased)["xx"]
        return out
    live_y = [h for h in range(zy.shape[1]) if h not in dead["zy"]]
    out = np.full((zx.shape[1], zy.shape[1]), np.nan)
    if xs and live_y:
        out[np.ix_(live_x, live_y)] = cka_grid(xs, [zy[:, h] for h in live_y], debiased)["xy"]
    return out


# ---- RBF CKA (exact, chunked) -----------------------------------------------------------------
def _sq_dist_rows(x: torch.Tensor, sq: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Squared distances of rows start:stop to all rows, `[c, n]`, diagonal exactly 0."""
    d = sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)  # [c, n]
    d.clamp_(min=0.0)
    idx = torch.arange(start, stop)
    d[idx - start, idx] = 0.0
    return d


def _chunk_rows(n: int, n_mats: int, budget_bytes: float) -> int:
    return max(1, min(n, int(budget_bytes // (8 * n * max(n_mats, 1)))))


def median_sq_distance(x: ArrayLike, budget_bytes: float = 128e6) -> float:
    """Exact median of the full `[n, n]` squared-distance matrix (zero diagonal included), as in
    Kornblith et al.'s `gram_rbf` (`np.median(sq_distances)`, mean of the two middle values when
    n^2 is even). Chunked selection: histogram passes narrow the range until the middle elements
    can be sorted; memory O(chunk * n)."""
    x = as_matrix(x, "x")
    x = x - x.mean(0)
    n = x.shape[0]
    sq = (x * x).sum(1)
    cs = _chunk_rows(n, 1, budget_bytes)
    total = n * n
    ks = sorted({(total - 1) // 2, total // 2})
    lo, hi = 0.0, float("inf")  # current range [lo, hi)
    below = 0  # number of elements < lo
    limit = 4_000_000
    while True:
        vals: list[torch.Tensor] = []
        inside, vmin, vmax = 0, float("inf"), -float("inf")
        for s in range(0, n, cs):
            d = _sq_dist_rows(x, sq, s, min(n, s + cs)).reshape(-1)
            sel = d[(d >= lo) & (d < hi)]
            inside += sel.numel()
            if sel.numel():
                vmin, vmax = min(vmin, float(sel.min())), max(vmax, float(sel.max()))
            if inside <= limit:
                vals.append(sel)
        if inside <= limit:
            allv = torch.sort(torch.cat(vals)).values
            return float(sum(float(allv[k - below]) for k in ks) / len(ks))
        if vmin == vmax:  # every element in range is the same value
            return vmin
        # too many to sort: histogram [vmin, vmax] and keep the bins holding the middle elements
        nb = 4096
        edges = torch.linspace(vmin, vmax, nb + 1, dtype=torch.float64)
        counts = torch.zeros(nb, dtype=torch.int64)
        for s in range(0, n, cs):
            d = _sq_dist_rows(x, sq, s, min(n, s + cs)).reshape(-1)
            d = d[(d >= lo) & (d < hi)]
            counts += torch.bincount(torch.bucketize(d, edges[1:-1], right=True), minlength=nb)
        cum = below + torch.cumsum(counts, 0)  # cum[i] = #elements < edges[i + 1] (last: <= vmax)
        b0 = int(torch.searchsorted(cum, torch.tensor(ks[0]), right=True))
        b1 = int(torch.searchsorted(cum, torch.tensor(ks[-1]), right=True))
        if b0 > 0:
            below = int(cum[b0 - 1])
        lo = float(edges[b0])
        hi = float(edges[b1 + 1]) if b1 + 1 < nb else math.nextafter(vmax, math.inf)


def _kernel_blocks_hsic(
    mats: list[torch.Tensor], sig2: list[float], pairs: list[tuple[int, int]], budget_bytes: float
) -> dict[str, object]:
    """One chunked pass over rows of the RBF Grams of all `mats`: per pair sum(K * L), per matrix
    row sums `[n]` and diagonals."""
    n = mats[0].shape[0]
    sqs = [(m * m).sum(1) for m in mats]
    cs = _chunk_rows(n, len(mats) + 1, budget_bytes)
    kl = torch.zeros(len(pairs), dtype=torch.float64)
    rows = [torch.empty(n, dtype=torch.float64) for _ in mats]
    for s in range(0, n, cs):
        e = min(n, s + cs)
        ks = []
        for i, (m, sq) in enumerate(zip(mats, sqs)):
            k = _sq_dist_rows(m, sq, s, e).mul_(-0.5 / sig2[i]).exp_()  # [c, n]
            rows[i][s:e] = k.sum(1)
            ks.append(k)
        for p, (i, j) in enumerate(pairs):
            kl[p] += (ks[i] * ks[j]).sum()
    return {"kl": kl, "rows": rows}


def _kernel_hsic(kl: float, rk: torch.Tensor, rl: torch.Tensor, n: int, debiased: bool) -> float:
    """HSIC from sum(K*L), row sums of K and L (RBF: unit diagonal). Biased: tr(KHLH)."""
    if not debiased:
        return kl - 2.0 * float(rk @ rl) / n + float(rk.sum()) * float(rl.sum()) / (n * n)
    if n < 4:
        raise ValueError(f"debiased CKA needs n >= 4 examples, got {n}")
    a, b = rk - 1.0, rl - 1.0  # row sums of the zero-diagonal Grams
    tr = kl - n
    return (tr + float(a.sum()) * float(b.sum()) / ((n - 1) * (n - 2)) - 2.0 * float(a @ b) / (n - 2)) / (n * (n - 3))


def rbf_cka_grid(
    xs: Mapping[str, ArrayLike] | Sequence[ArrayLike],
    ys: Mapping[str, ArrayLike] | Sequence[ArrayLike],
    threshold: float = 0.5,
    debiased: bool = False,
    budget_bytes: float = 512e6,
) -> np.ndarray:
    """Exact RBF CKA grid `[Lx, Ly]`, bandwidth sigma^2 = threshold^2 * median squared distance per
    representation (Kornblith et al. 2019). Row-chunked: never materialises an `[n, n]` Gram, peak
    memory about `budget_bytes`; cost O(n^2 (d + L)) per layer."""
    _, xm = _names_and_mats(xs, "x")
    _, ym = _names_and_mats(ys, "y")
    n = xm[0].shape[0]
    for m in xm + ym:
        if m.shape[0] != n:
            raise ValueError(f"mismatched n: {m.shape[0]} vs {n} rows")
    if n < 2:
        raise ValueError("need at least 2 examples")
    mats = [m - m.mean(0) for m in xm + ym]
    sig2 = []
    for i, m in enumerate(mats):
        med = median_sq_distance(m, budget_bytes / 4)
        if not med > 0:
            raise ValueError(
                f"representation {i} has median squared distance 0 (constant or mostly duplicate rows): "
                "the median bandwidth rule is undefined"
            )
        sig2.append(threshold**2 * med)
    Lx, Ly = len(xm), len(ym)
    pairs = [(i, i) for i in range(Lx + Ly)] + [(i, Lx + j) for i in range(Lx) for j in range(Ly)]
    st = _kernel_blocks_hsic(mats, sig2, pairs, budget_bytes)
    kl, rows = st["kl"], st["rows"]
    self_h = [_kernel_hsic(float(kl[i]), rows[i], rows[i], n, debiased) for i in range(Lx + Ly)]
    for i, h in enumerate(self_h):
        if not h > 0:
            raise ValueError(f"representation {i}: non-positive self-HSIC ({h:.3g}); CKA undefined")
    out = np.empty((Lx, Ly))
    for p, (i, j) in enumerate(pairs[Lx + Ly :], start=Lx + Ly):
        h = _kernel_hsic(float(kl[p]), rows[i], rows[j], n, debiased)
        out[i, j - Lx] = h / math.sqrt(self_h[i] * self_h[j])
    return out


def rbf_cka(x: ArrayLike, y: ArrayLike, threshold: float = 0.5, debiased: bool = False,
            budget_bytes: float = 512e6) -> float:
    """Exact RBF CKA (median-distance bandwidth, Kornblith's `gram_rbf(x, threshold)`)."""
    return float(rbf_cka_grid([x], [y], threshold, debiased, budget_bytes)[0, 0])


# ---- RBF CKA, Nystrom approximation ----------------------------------------------------------
def nystrom_features(
    x: ArrayLike, n_landmarks: int = 1000, threshold: float = 0.5, seed: int = 0,
    sigma2: float | None = None,
) -> torch.Tensor:
    """Nystrom feature map `[n, m]` with `phi phi^T ~ K_rbf` (Williams & Seeger 2001).

    Landmarks: `m` rows drawn uniformly without replacement (seeded). Bandwidth: unless `sigma2` is
    given, threshold^2 * the median squared distance among the landmarks (full m x m matrix, the same
    convention as the exact path), an estimate of the full-data median. Eigenvalues of K_mm below
    1e-10 * the largest are dropped.
    """
    x = as_matrix(x, "x")
    x = x - x.mean(0)
    n = x.shape[0]
    m = min(n_landmarks, n)
    g = torch.Generator().manual_seed(seed)
    lm = x[torch.randperm(n, generator=g)[:m]]  # [m, d]
    if sigma2 is None:
        sigma2 = threshold**2 * median_sq_distance(lm)
        if not sigma2 > 0:
            raise ValueError("median squared distance among landmarks is 0; cannot set the RBF bandwidth")
    sq_l = (lm * lm).sum(1)
    kmm = torch.exp(-(sq_l[:, None] + sq_l[None, :] - 2 * lm @ lm.T).clamp_(min=0) / (2 * sigma2))
    evals, evecs = torch.linalg.eigh(kmm)
    keep = evals > 1e-10 * evals.max()
    proj = evecs[:, keep] / evals[keep].sqrt()  # [m, r] = K_mm^{-1/2} on its range
    out = torch.empty(n, int(keep.sum()), dtype=torch.float64)
    sq = (x * x).sum(1)
    for s in range(0, n, 8192):
        e = min(n, s + 8192)
        knm = torch.exp(-(sq[s:e, None] + sq_l[None, :] - 2 * x[s:e] @ lm.T).clamp_(min=0) / (2 * sigma2))
        out[s:e] = knm @ proj
    return out


def rbf_cka_nystrom(
    x: ArrayLike, y: ArrayLike, threshold: float = 0.5, n_landmarks: int = 1000, seed: int = 0,
    debiased: bool = False,
) -> float:
    """Approximate RBF CKA for large n: linear CKA of Nystrom features (O(n m^2) time, O(n m) memory).

    The same landmark rows are used for x and y. The error depends on how fast the kernel spectrum
    decays: < 0.02 at m = 500 on the low-rank test data (tests/test_cka.py), but 0.09 at m = 1000 on
    the benchmark's noisy d = 384 data at n = 5,000 (`benchmarks/cka.py`). Prefer the exact chunked
    `rbf_cka` (O(n^2) time, bounded memory) whenever n allows; measure the error on a subsample.
    """
    x, y = as_matrix(x, "x"), as_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"mismatched n: x has {x.shape[0]} rows, y has {y.shape[0]}")
    fx = nystrom_features(x, n_landmarks, threshold, seed)
    fy = nystrom_features(y, n_landmarks, threshold, seed)
    return linear_cka(fx, fy, debiased)


# ---- minibatch CKA (Nguyen et al. 2021) ------------------------------------------------------
def hsic1_grams(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC_1 (Song et al. 2012) for every pair of Grams: `k [A, b, b]`, `l [B, b, b]` -> `[A, B]`."""
    n = k.shape[-1]
    if n < 4:
        raise ValueError(f"HSIC_1 needs a batch of at least 4 examples, got {n}")
    k = k.clone()
    l = l.clone()
    k.diagonal(dim1=-2, dim2=-1).zero_()
    l.diagonal(dim1=-2, dim2=-1).zero_()
    tr = k.reshape(k.shape[0], -1) @ l.reshape(l.shape[0], -1).T  # [A, B] tr(K~ L~) (symmetric)
    rk, rl = k.sum(-1), l.sum(-1)  # [A, b], [B, b]
    sk, sl = rk.sum(-1), rl.sum(-1)
    return (tr + torch.outer(sk, sl) / ((n - 1) * (n - 2)) - 2.0 * (rk @ rl.T) / (n - 2)) / (n * (n - 3))


def _gram(x: torch.Tensor, kernel: Kernel, threshold: float) -> torch.Tensor:
    x = x - x.mean(0)
    g = x @ x.T  # [b, b]
    if kernel == "linear":
        return g
    sq = torch.diagonal(g)
    d = (sq[:, None] + sq[None, :] - 2 * g).clamp_(min=0)
    d.fill_diagonal_(0.0)
    v = d.reshape(-1).sort().values
    med = float(v[(v.numel() - 1) // 2 : v.numel() // 2 + 1].mean())  # numpy.median convention
    if not med > 0:
        raise ValueError("median squared distance is 0 in a batch; RBF bandwidth undefined")
    return torch.exp(-d / (2 * threshold**2 * med))


class MinibatchCKA:
    """Minibatch CKA (Nguyen et al. 2021): per-batch HSIC_1 summed over batches, normalised at the
    end. Not the same quantity as full-data CKA, and not the average of per-batch CKA (which is
    biased upwards). Batches must have at least 4 rows; Grams are float64."""

    def __init__(self, kernel: Kernel = "linear", threshold: float = 0.5):
        self.kernel, self.threshold = kernel, threshold
        self.xy = self.xx = self.yy = None

    def update(self, xs: Sequence[ArrayLike] | ArrayLike, ys: Sequence[ArrayLike] | ArrayLike) -> MinibatchCKA:
        _, xm = _names_and_mats(xs, "x")
        _, ym = _names_and_mats(ys, "y")
        b = xm[0].shape[0]
        if any(m.shape[0] != b for m in xm + ym):
            raise ValueError("mismatched n within a minibatch")
        kx = torch.stack([_gram(m, self.kernel, self.threshold) for m in xm])  # [Lx, b, b]
        ky = torch.stack([_gram(m, self.kernel, self.threshold) for m in ym])  # [Ly, b, b]
        xy = hsic1_grams(kx, ky)
        xx = torch.stack([hsic1_grams(kx[i : i + 1], kx[i : i + 1])[0, 0] for i in range(len(kx))])
        yy = torch.stack([hsic1_grams(ky[i : i + 1], ky[i : i + 1])[0, 0] for i in range(len(ky))])
        if self.xy is None:
            self.xy, self.xx, self.yy = xy, xx, yy
        else:
            self.xy += xy
            self.xx += xx
            self.yy += yy
        return self

    def result(self) -> np.ndarray:
        if self.xy is None:
            raise ValueError("no batches seen")
        return (self.xy / torch.sqrt(torch.outer(self.xx, self.yy))).numpy()


def minibatch_cka(
    batches: Iterable[tuple[ArrayLike, ArrayLike]], kernel: Kernel = "linear", threshold: float = 0.5
) -> float:
    """Minibatch CKA of one pair from an iterable of `(x_b [b, d1], y_b [b, d2])` batches."""
    acc = MinibatchCKA(kernel, threshold)
    for xb, yb in batches:
        acc.update(xb, yb)
    return float(acc.result()[0, 0])
