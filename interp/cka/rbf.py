"""Exact RBF CKA (Kornblith et al. 2019) with the median-distance bandwidth, chunked over rows.

Distances are symmetric, so both passes walk the upper triangle only, in row chunks `[c, n - s]` (the
c x c diagonal square plus the rectangle to its right): about n^2 d flops per representation and pass
instead of 2 n^2 d. Pass 1 (per representation) collects the n(n-1)/2 distances above the diagonal
(half an n x n matrix) and selects the median; pass 2 forms every representation's kernel chunk at once
and accumulates sum(K * L) and the row sums, from which HSIC follows without forming a centred Gram.
All in float64 (distances, median, kernel, sums): deviation from a float64 Gram-form reference ~1e-15.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from interp.cka.inputs import ArrayLike, _names_and_mats, as_matrix


def _sq_dist_rows(x: torch.Tensor, sq: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Squared distances of rows start:stop to all rows, `[c, n]`, diagonal exactly 0."""
    d = sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)  # [c, n]
    d.clamp_(min=0.0)
    idx = torch.arange(start, stop, device=x.device)
    d[idx - start, idx] = 0.0
    return d


def _sq_dist_upper(x: torch.Tensor, sq: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Squared distances of rows start:stop to rows start:n, `[c, n - start]`: the diagonal square
    (its diagonal exactly 0) and the rectangle right of it."""
    d = torch.addmm(sq[start:, None].T, x[start:stop], x[start:].T, alpha=-2.0)  # [c, n - s]
    d += sq[start:stop, None]
    d.clamp_(min=0.0)
    d.diagonal().zero_()
    return d


def _chunk_rows(n: int, n_mats: int, budget_bytes: float) -> int:
    return max(1, min(n, int(budget_bytes // (8 * n * max(n_mats, 1)))))


def _upper_values(x: torch.Tensor, sq: torch.Tensor, cs: int) -> torch.Tensor:
    """The n(n-1)/2 squared distances strictly above the diagonal, `[n(n-1)/2]`, in one triangular pass."""
    n = x.shape[0]
    out = torch.empty(n * (n - 1) // 2, dtype=torch.float64, device=x.device)
    pos = 0
    for s in range(0, n, cs):
        e = min(n, s + cs)
        d = _sq_dist_upper(x, sq, s, e)  # [c, n - s]
        iu = torch.triu_indices(e - s, e - s, offset=1, device=x.device)
        sq_part = d[iu[0], iu[1]]  # strictly upper part of the diagonal square
        rect = d[:, e - s :].reshape(-1)
        out[pos : pos + sq_part.numel()] = sq_part
        pos += sq_part.numel()
        out[pos : pos + rect.numel()] = rect
        pos += rect.numel()
    return out


def _median_from_upper(u: torch.Tensor, n: int) -> float:
    """Median of the full n x n distance matrix from its strict upper triangle u: sorted, the full
    matrix is n zeros (the diagonal) followed by every upper value twice."""
    total = n * n
    ks = sorted({(total - 1) // 2, total // 2})
    js = sorted({(k - n) // 2 for k in ks if k >= n})
    picked = _order_statistics(u, js) if js else {}
    vals = [0.0 if k < n else picked[(k - n) // 2] for k in ks]
    return sum(vals) / len(vals)


def _order_statistics(u: torch.Tensor, js: list[int], how: str | None = None) -> dict[int, float]:
    """The j-th smallest values of the 1-D `u` (0-based). `how`: "partition" (numpy, in place: no second
    copy; the CPU default) or "sort" (one sort, the GPU default: two torch.kthvalue calls on the 12.5 million
    values of n = 5,000 took 0.21 s on an NVIDIA H200, the sort 0.002 s; benchmarks/device_check.py)."""
    how = how or ("partition" if u.device.type == "cpu" else "sort")
    if how == "partition":
        a = u.numpy()
        a.partition(js)
        return {j: float(a[j]) for j in js}
    ordered = torch.sort(u).values
    return {j: float(ordered[j]) for j in js}


def median_sq_distance(x: ArrayLike, budget_bytes: float = 512e6) -> float:
    """Exact median of the full `[n, n]` squared-distance matrix (zero diagonal included), as in
    Kornblith et al.'s `gram_rbf` (`np.median(sq_distances)`, mean of the two middle values when
    n^2 is even). One triangular pass and a selection when the n(n-1)/2 upper distances fit
    `budget_bytes`; else histogram passes over row chunks (memory O(chunk * n))."""
    x = as_matrix(x, "x", keep_device=True)
    x = x - x.mean(0)
    n = x.shape[0]
    if n < 2:
        return 0.0
    if 8 * n * (n - 1) / 2 > 0.75 * budget_bytes:
        return _median_by_histogram(x, budget_bytes / 4)
    sq = (x * x).sum(1)
    return _median_from_upper(_upper_values(x, sq, _chunk_rows(n, 1, budget_bytes / 8)), n)


def _median_by_histogram(x: torch.Tensor, budget_bytes: float) -> float:
    """`median_sq_distance` of centred x when the n(n-1)/2 distances do not fit the budget: histogram
    passes narrow the range until the middle elements can be sorted; memory O(chunk * n)."""
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
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One triangular pass over row chunks of the RBF Grams of all `mats`: per pair sum(K * L) `[P]`,
    per matrix the row sums `[n]` (unit diagonal included); both on the CPU."""
    n = mats[0].shape[0]
    dev = mats[0].device
    sqs = [(m * m).sum(1) for m in mats]
    cs = _chunk_rows(n, len(mats) + 1, budget_bytes)
    kl = torch.zeros(len(pairs), dtype=torch.float64, device=dev)
    rows = [torch.zeros(n, dtype=torch.float64, device=dev) for _ in mats]
    for s in range(0, n, cs):
        e = min(n, s + cs)
        c = e - s
        ks = []
        for i, (m, sq) in enumerate(zip(mats, sqs)):
            k = _sq_dist_upper(m, sq, s, e).mul_(-0.5 / sig2[i]).exp_()  # [c, n - s]
            rows[i][s:e] += k.sum(1)
            rows[i][e:] += k[:, c:].sum(0)  # the rectangle's transpose (lower triangle)
            ks.append(k)
        for p, (i, j) in enumerate(pairs):
            whole = torch.dot(ks[i].reshape(-1), ks[j].reshape(-1))
            square = (ks[i][:, :c] * ks[j][:, :c]).sum()
            kl[p] += 2.0 * whole - square  # the rectangle counts twice (it and its transpose)
    return kl.cpu(), [r.cpu() for r in rows]
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
    _, xm = _names_and_mats(xs, "x", keep_device=True)
    _, ym = _names_and_mats(ys, "y", keep_device=True)
    dev = xm[0].device
    xm, ym = [m.to(dev) for m in xm], [m.to(dev) for m in ym]
    n = xm[0].shape[0]
    for m in xm + ym:
        if m.shape[0] != n:
            raise ValueError(f"mismatched n: {m.shape[0]} vs {n} rows")
    if n < 2:
        raise ValueError("need at least 2 examples")
    mats = [m - m.mean(0) for m in xm + ym]
    sig2 = []
    for i, m in enumerate(mats):
        med = median_sq_distance(m, budget_bytes)
        if not med > 0:
            raise ValueError(
                f"representation {i} has median squared distance 0 (constant or mostly duplicate rows): "
                "the median bandwidth rule is undefined"
            )
        sig2.append(threshold**2 * med)
    Lx, Ly = len(xm), len(ym)
    pairs = [(i, i) for i in range(Lx + Ly)] + [(i, Lx + j) for i in range(Lx) for j in range(Ly)]
    kl, rows = _kernel_blocks_hsic(mats, sig2, pairs, budget_bytes)  # [P], [n] per matrix
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
