"""Error bound of mixed-precision linear CKA (float32 products in blocks, float64 accumulation).

The mixed path rounds every big product `X^T Y` (and each Gram) to float32 arithmetic: the shifted rows
are rounded to float32 (operand rounding) and multiplied in float32 over blocks of rows (product rounding).
Its error is *measured*, not modelled: beside each float32 product the accumulator keeps `X^T (Y V)` in
float64, computed from the float64 shifted rows, for K Gaussian probe vectors V (about K / d extra work),
so at the end `R = C_hat V - X^T (Y V)` equals `(C_hat - C) V` up to float64 rounding, both rounding
sources included. Each Gram has its own probes (V_l, `[d_l, K]`); the cross product of a grid is probed
once with every Y layer's probes stacked (`[Dy, K]`), so the residual of X layer k's row block bounds
||(C_hat - C)[block k, :]||_F, which bounds every cell (k, l) of that row (a factor up to sqrt(Ly)
looser than per-cell probes, at 1 / Ly of their work). For any fixed error matrix E = C_hat - C,
`||E V||_F^2 / ||E||_F^2` is a weighted chi-square with K degrees of freedom per unit weight; with
K = 16 it is below 0.05 K with probability <= 1.2e-8 (rank-one worst case), so

    ||C_hat - C||_F <= SAFETY * ||R||_F / sqrt(K),   SAFETY = 1 / sqrt(0.05),

fails for a cell with probability at most 1.2e-8 over the probe draw, whatever the data or the BLAS.
That bound on each cross product / Gram block goes through the HSIC formulas (biased: ||C_c||^2,
debiased: HSIC_1 in feature form) and the CKA ratio as interval arithmetic: `cka_bound` returns the
largest change of the computed CKA over all HSIC values within the bounds. The result bounds
|CKA_mixed - CKA_exact|; the float64 path's own rounding (~1e-15) is not included.
"""
from __future__ import annotations

import math

import numpy as np

SAFETY = 1.0 / math.sqrt(0.05)


def hsic_error(norm_c: np.ndarray, e: np.ndarray, n: float, debiased: bool, norm_sx: np.ndarray | float = 0.0,
               norm_sy: np.ndarray | float = 0.0) -> np.ndarray:
    """Bound on |HSIC_hat - HSIC| when the product matrix C is off by at most e in Frobenius norm.

    Biased HSIC is ||C_c||_F^2 (C_c = C - s_x s_y^T / n, the correction exact in float64): off by at most
    e (2 ||C_c_hat|| + e). Debiased HSIC_1 (feature form) has tr = ||C||^2 - ... and 1^T K L 1 = s_x^T C s_y
    - ..., off by e (2 ||C_hat|| + e) and ||s_x|| ||s_y|| e; `norm_c` is ||C_c_hat|| or ||C_hat|| accordingly.
    """
    d_tr = e * (2.0 * norm_c + e)
    if not debiased:
        return d_tr
    return (d_tr + 2.0 * norm_sx * norm_sy * e / (n - 2)) / (n * (n - 3))


def cka_bound(h: np.ndarray, dh: np.ndarray, hx: np.ndarray, dhx: np.ndarray, hy: np.ndarray,
              dhy: np.ndarray) -> np.ndarray:
    """Largest |h' / sqrt(hx' hy') - h / sqrt(hx hy)| over |h' - h| <= dh, |hx' - hx| <= dhx,
    |hy' - hy| <= dhy (elementwise, broadcast). The ratio is monotone in each argument, so the
    extremes are at the corners; inf where the self-HSIC interval reaches 0."""
    cka = h / np.sqrt(hx * hy)
    lo = np.sqrt(np.clip(hx - dhx, 0.0, None) * np.clip(hy - dhy, 0.0, None))
    hi = np.sqrt((hx + dhx) * (hy + dhy))
    with np.errstate(divide="ignore", invalid="ignore"):
        corners = [(h + dh) / lo, (h - dh) / lo, (h + dh) / hi, (h - dh) / hi]
    out = np.max([np.abs(c - cka) for c in corners], axis=0)
    return np.where(lo > 0, out, np.inf)
