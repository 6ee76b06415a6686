"""Feature-form sufficient statistics of linear CKA (one side of a grid) and the HSIC formulas that
turn them into biased / debiased CKA for one pair or a whole grid."""
from __future__ import annotations

import numpy as np
import torch


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
