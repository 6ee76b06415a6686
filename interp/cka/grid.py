"""In-memory linear CKA: one pair (`linear_cka`) and labelled layer grids (`cka_grid`, `CKAGrid`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from interp.cka.accumulator import CKAAccumulator
from interp.cka.inputs import ArrayLike, _batched, _check_ids, _names_and_mats, _rows_per_batch, as_matrix


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
