"""Statistics for CKA: analytic floor, bootstrap CIs over examples, permutation null, condition grids.

All built on the exact float64 feature-form accumulator in `interp.cka.accumulator` (linear kernel).
Bootstrap replicates are multinomial example counts used as weights (exact duplication), so each
replicate costs one pass over the data and no copies.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from interp.cka.accumulator import CKAAccumulator
from interp.cka.inputs import ArrayLike, _batched, _check_ids, _names_and_mats, _rows_per_batch, as_matrix

__all__ = ["cka_floor", "bootstrap_cka", "permutation_null", "condition_grids"]


def cka_floor(n: int, d1: int, d2: int) -> float:
    """Approximate value of biased linear CKA for unrelated (independent Gaussian) data:
    sqrt(d1 d2 / ((n + d1)(n + d2))). Use it as a floor when reading biased CKA at small n; d is the
    effective dimension (at most n - 1 after centring)."""
    if n < 2:
        raise ValueError("n must be >= 2")
    d1, d2 = min(d1, n - 1), min(d2, n - 1)
    return math.sqrt(d1 * d2 / ((n + d1) * (n + d2)))


def _grid_from(
    xm: list[torch.Tensor], ym: list[torch.Tensor], debiased: bool, weights: torch.Tensor | None = None,
    rows: torch.Tensor | None = None,
) -> np.ndarray:
    if rows is not None:
        xm, ym = [m[rows] for m in xm], [m[rows] for m in ym]
    acc = CKAAccumulator()
    bs = _rows_per_batch(sum(m.shape[1] for m in xm + ym))
    n = xm[0].shape[0]
    for i, (xb, yb) in enumerate(zip(_batched(xm, bs), _batched(ym, bs))):
        w = None if weights is None else weights[i * bs : i * bs + xb[0].shape[0]]
        acc.update(xb, yb, weights=w)
    assert acc.n_rows == n
    return acc.result(debiased)


def _prep(xs, ys) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Matrices of both sides ({name: [n, d]}, lists, or Captures of the same examples)."""
    _check_ids(xs, ys)
    _, xm = _names_and_mats(xs, "x")
    _, ym = _names_and_mats(ys, "y")
    n = xm[0].shape[0]
    if ym[0].shape[0] != n:
        raise ValueError(f"mismatched n: x has {n} rows, y has {ym[0].shape[0]}")
    return xm, ym


def bootstrap_cka(
    xs: Mapping[str, ArrayLike] | Sequence[ArrayLike] | ArrayLike,
    ys: Mapping[str, ArrayLike] | Sequence[ArrayLike] | ArrayLike,
    n_boot: int = 200,
    alpha: float = 0.05,
    debiased: bool = False,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Percentile bootstrap CI over examples for a linear CKA grid.

    Returns estimate / lo / hi / se (each `[Lx, Ly]`) and samples `[n_boot, Lx, Ly]`.
    Each replicate reweights examples by multinomial counts (same as resampling rows).
    """
    xm, ym = _prep(xs, ys)
    n = xm[0].shape[0]
    est = _grid_from(xm, ym, debiased)
    g = np.random.default_rng(seed)
    samples = np.empty((n_boot,) + est.shape)
    for b in range(n_boot):
        w = torch.from_numpy(g.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64))
        samples[b] = _grid_from(xm, ym, debiased, weights=w)
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2], axis=0)
    return {"estimate": est, "lo": lo, "hi": hi, "se": samples.std(0, ddof=1), "samples": samples}


def permutation_null(
    x: ArrayLike, y: ArrayLike, n_perm: int = 200, debiased: bool = False, seed: int = 0
) -> dict[str, object]:
    """Permutation null for one pair: CKA with the rows of y permuted (breaks the pairing, keeps
    both marginals). Returns observed, null `[n_perm]` and the one-sided p-value
    (1 + #{null >= observed}) / (1 + n_perm).

    Biased CKA: Grams and norms are permutation invariant, so each permutation only recomputes the
    centred cross product `X_c^T P Y_c` (O(n d1 d2))."""
    x, y = as_matrix(x, "x"), as_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"mismatched n: x has {x.shape[0]} rows, y has {y.shape[0]}")
    n = x.shape[0]
    g = torch.Generator().manual_seed(seed)
    null = np.empty(n_perm)
    if debiased:
        obs = float(_grid_from([x], [y], True)[0, 0])
        for i in range(n_perm):
            null[i] = _grid_from([x], [y[torch.randperm(n, generator=g)]], True)[0, 0]
    else:
        xc, yc = x - x.mean(0), y - y.mean(0)
        norm = float(torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc))
        if not norm > 0:
            raise ValueError("a representation is constant (zero variance): CKA is undefined")
        obs = float((xc.T @ yc).square().sum()) / norm
        for i in range(n_perm):
            null[i] = float((xc.T @ yc[torch.randperm(n, generator=g)]).square().sum()) / norm
    p = (1 + int((null >= obs).sum())) / (1 + n_perm)
    return {"observed": obs, "null": null, "p_value": p}


def condition_grids(
    xs: Mapping[str, ArrayLike] | Sequence[ArrayLike],
    ys: Mapping[str, ArrayLike] | Sequence[ArrayLike],
    conditions: Mapping[str, ArrayLike],
    contrast: tuple[str, str] | None = None,
    debiased: bool = False,
    n_boot: int = 0,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, object]:
    """CKA grids on subsets of examples (e.g. HANS bias-aligned vs bias-conflicting) and their
    difference `grids[a] - grids[b]` for `contrast=(a, b)` (default: the first two conditions).

    conditions: name -> boolean mask `[n]`. With `n_boot > 0`, a bootstrap CI of the difference,
    resampling examples within each condition independently. Subsets of different size have
    different biased-CKA floors; use `debiased=True` when the sizes differ a lot.
    """
    xm, ym = _prep(xs, ys)
    n = xm[0].shape[0]
    masks = {}
    for name, m in conditions.items():
        mt = torch.as_tensor(np.asarray(m)).reshape(-1)
        if mt.shape[0] != n:
            raise ValueError(f"condition {name!r}: mask has {mt.shape[0]} entries, data has {n} rows")
        idx = torch.nonzero(mt.to(torch.bool)).reshape(-1)
        if idx.numel() < 4:
            raise ValueError(f"condition {name!r} selects {idx.numel()} examples; need at least 4")
        masks[name] = idx
    grids = {k: _grid_from(xm, ym, debiased, rows=idx) for k, idx in masks.items()}
    out: dict[str, object] = {"grids": grids, "n": {k: int(v.numel()) for k, v in masks.items()}}
    if len(masks) >= 2:
        a, b = contrast or tuple(list(masks)[:2])
        out["contrast"] = (a, b)
        out["difference"] = grids[a] - grids[b]
        if n_boot > 0:
            g = np.random.default_rng(seed)
            diffs = np.empty((n_boot,) + grids[a].shape)
            for r in range(n_boot):
                reps = []
                for k in (a, b):
                    nk = masks[k].numel()
                    w = torch.from_numpy(g.multinomial(nk, np.full(nk, 1.0 / nk)).astype(np.float64))
                    reps.append(_grid_from([t[masks[k]] for t in xm], [t[masks[k]] for t in ym], debiased, weights=w))
                diffs[r] = reps[0] - reps[1]
            out["difference_lo"], out["difference_hi"] = np.quantile(diffs, [alpha / 2, 1 - alpha / 2], axis=0)
    return out
