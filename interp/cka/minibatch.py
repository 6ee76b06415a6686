"""Minibatch CKA (Nguyen et al. 2021): per-batch HSIC_1 summed over batches, normalised at the end."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from interp.cka.inputs import ArrayLike, Kernel, _names_and_mats


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
        # running sums of per-batch HSIC_1: [Lx, Ly], [Lx], [Ly]; None before the first batch
        self.xy: torch.Tensor | None = None
        self.xx: torch.Tensor | None = None
        self.yy: torch.Tensor | None = None

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
        if self.xy is None or self.xx is None or self.yy is None:
            self.xy, self.xx, self.yy = xy, xx, yy
        else:
            self.xy += xy
            self.xx += xx
            self.yy += yy
        return self

    def result(self) -> np.ndarray:
        """Minibatch CKA grid `[Lx, Ly]`."""
        if self.xy is None or self.xx is None or self.yy is None:
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
