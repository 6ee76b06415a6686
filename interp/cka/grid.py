"""In-memory linear CKA: one pair (`linear_cka`) and labelled layer grids (`cka_grid`, `CKAGrid`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from interp.cka.accumulator import CKAAccumulator
from interp.cka.accumulator import Precision as AccPrecision
from interp.cka.inputs import ArrayLike, _batched, _check_ids, _names_and_mats, _rows_per_batch, as_matrix

Precision = Literal["float64", "mixed", "auto"]
# "auto" keeps the mixed-precision result only where its measured error bound is at most this on every
# cell: 1e-5 is far below the sampling error of CKA (bootstrap half-widths are ~1e-2 at n = 10,000).
AUTO_TOL = 1e-5
# self-grid key -> the accumulator side it comes from
_SELF_SIDE: dict[str, Literal["x", "y"]] = {"xx": "x", "yy": "y"}


def _check_precision(precision: str) -> None:
    if precision not in ("float64", "mixed", "auto"):
        raise ValueError(f"precision must be 'float64', 'mixed' or 'auto', not {precision!r}")


def _arithmetic(precision: Precision, device: torch.device) -> AccPrecision:
    """What a grid computes in. "auto" is mixed on a CPU, where float32 products run about twice as fast as
    float64 ones, and float64 on a GPU, where they are not: on an NVIDIA H200 the 7 x 4 grid at n = 10,000
    (benchmarks/device_check.py, median of 3) took 0.064 s in float64 and 0.103 s mixed."""
    if precision == "float64" or (precision == "auto" and device.type == "cuda"):
        return "float64"
    return "mixed"


def linear_cka(x: ArrayLike, y: ArrayLike, debiased: bool = False, precision: Precision = "float64",
               tol: float = AUTO_TOL) -> float:
    """Linear CKA of `x [n, d1]` and `y [n, d2]` (feature form). `debiased` uses HSIC_1.
    `precision` as in `cka_grid` (default float64, the reference)."""
    _check_precision(precision)
    if precision != "float64":
        return float(cka_grid([x], [y], debiased, precision=precision, tol=tol).grid[0, 0])
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

    def __init__(self, grids: Mapping[str, np.ndarray], x_labels: Sequence[str], y_labels: Sequence[str],
                 precision: str = "float64", error_bound: Mapping[str, np.ndarray] | None = None):
        super().__init__(grids)
        self.x_labels = list(x_labels)
        self.y_labels = list(y_labels)
        self.precision = precision  # the arithmetic the values came from: "float64" or "mixed"
        self.error_bound = dict(error_bound or {})  # mixed: measured bound per grid key; else empty

    @property
    def grid(self) -> np.ndarray:
        """[Lx, Ly]: the cross grid ("xy"), or the self grid ("xx") when only one side was given."""
        return dict.__getitem__(self, "xy" if "xy" in self else "xx")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.grid.shape

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
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


def _accumulate(xn: list[str], xm: list[torch.Tensor], yn: list[str] | None, ym: list[torch.Tensor] | None,
                bs: int, self_grids: bool, precision: AccPrecision, debiased: bool) -> CKAAccumulator:
    acc = CKAAccumulator(symmetric=ym is None, self_grids=self_grids, precision=precision, biased_only=not debiased)
    if ym is None or yn is None:  # symmetric (both None together)
        for xb in _batched(xm, bs):
            acc.update(dict(zip(xn, xb)))
    else:
        for xb, yb in zip(_batched(xm, bs), _batched(ym, bs)):
            acc.update(dict(zip(xn, xb)), dict(zip(yn, yb)))
    return acc


def cka_grid(
    xs: Mapping[str, ArrayLike] | Sequence[ArrayLike] | object,
    ys: Mapping[str, ArrayLike] | Sequence[ArrayLike] | object | None = None,
    debiased: bool = False,
    self_grids: bool = False,
    batch_size: int | None = None,
    precision: Precision = "float64",
    tol: float = AUTO_TOL,
) -> CKAGrid:
    """Linear CKA grid of in-memory layers, computed in one pass of row batches.

    `xs`, `ys`: {name: [n, d]}, a list of [n, d], or a Capture (pooled; both captures on the same ids).
    Returns a `CKAGrid` labelled by layer name: `.grid` [Lx, Ly]; as a dict {"xy": [Lx, Ly]} and, with
    `self_grids` (or `ys=None`), "xx" [Lx, Lx] / "yy" [Ly, Ly]. The work runs on the inputs' device
    (CUDA tensors stay on their GPU).

    `precision`: "float64" (default, the exact reference); "mixed": float32 products in row blocks with
    float64 accumulation, about 2x faster on CPUs, `grid.error_bound` holds the measured bound on
    |CKA_mixed - CKA_float64| per cell (`interp.cka.precision`); "auto": mixed, kept only if that
    bound is at most `tol` on every cell, else recomputed in float64 (`grid.precision` says which); on a
    GPU "auto" is float64 (see `_arithmetic`).
    """
    _check_precision(precision)
    _check_ids(xs, ys)
    xn, xm = _names_and_mats(xs, "x", convert=False)
    yn: list[str] | None = None
    ym: list[torch.Tensor] | None = None
    width = sum(m.shape[1] for m in xm)
    if ys is not None:
        yn, ym = _names_and_mats(ys, "y", convert=False)
        if xm[0].shape[0] != ym[0].shape[0]:
            raise ValueError(f"mismatched n: x has {xm[0].shape[0]} rows, y has {ym[0].shape[0]}")
        width += sum(m.shape[1] for m in ym)
    bs = batch_size or _rows_per_batch(width)
    keys = ["xx"] if ym is None else ["xy"] + (["xx", "yy"] if self_grids else [])

    def grids(acc: CKAAccumulator) -> dict[str, np.ndarray]:
        return {k: acc.result(debiased) if k == "xy" else acc.self_grid(_SELF_SIDE[k], debiased) for k in keys}

    used = _arithmetic(precision, xm[0].device if isinstance(xm[0], torch.Tensor) else torch.device("cpu"))
    # the chunked mixed pass of a cross grid copies no batch to float64: one batch of every row
    fast = used == "mixed" and ym is not None and not self_grids and batch_size is None
    acc = _accumulate(xn, xm, yn, ym, xm[0].shape[0] if fast else bs, self_grids, used, debiased)
    bound: dict[str, np.ndarray] = {}
    if used == "float64":
        out = grids(acc)
    else:  # each grid with its measured bound; the cross grid shares its HSIC values with its bound
        out = {}
        for k in keys:
            if k == "xy":
                out[k], bound[k] = acc.result_with_bound(debiased)
            else:
                out[k], bound[k] = acc.self_grid(_SELF_SIDE[k], debiased), acc.error_bound(debiased, _SELF_SIDE[k])
        if precision == "auto" and max(float(b.max()) for b in bound.values()) > tol:
            used, bound = "float64", {}
            out = grids(_accumulate(xn, xm, yn, ym, bs, self_grids, used, debiased))
    return CKAGrid(out, xn, xn if yn is None else yn, used, bound)
