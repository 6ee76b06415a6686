"""Feature-form sufficient statistics of linear CKA (one side of a grid) and the HSIC formulas that
turn them into biased / debiased CKA for one pair or a whole grid."""
from __future__ import annotations

import numpy as np
import torch

# Mixed precision (precision="mixed"): products in float32 over blocks of this many rows, each block's
# result added to the float64 accumulators. Larger blocks: fewer float32 -> float64 additions, larger
# (but still measured) rounding error.
MIXED_BLOCK_ROWS = 4096
# Probe vectors per layer that measure the accumulated rounding error of the mixed products (see
# interp.cka.precision): about K / d_layer extra work.
PROBES = 16
# A float32 block is added to its float64 total in row slices of about this many elements (512 KB in float64).
FLUSH_ELEMENTS = 1 << 16


def _zeros64(*shape: int, device: torch.device) -> torch.Tensor:
    """A float64 accumulator of zeros on `device`."""
    return torch.zeros(*shape, dtype=torch.float64, device=device)


class _Product:
    """Running sum of `a^T b` over batches, in float64 (`total`).

    `block_rows=None`: every batch is one float64 matmul into `total`. Else a, b are float32: products
    go into a float32 partial sum covering at most `block_rows` rows (big batches are split, small ones
    share a block), which is added to the float64 `total` when the next rows would overflow the block
    and before any read (`value()`)."""

    def __init__(self, rows: int, cols: int, device: torch.device, block_rows: int | None):
        self.block_rows = block_rows
        self.total = torch.zeros(rows, cols, dtype=torch.float64, device=device)  # [rows, cols]
        self.part = None if block_rows is None else torch.empty(rows, cols, dtype=torch.float32, device=device)
        self.pending = 0  # rows summed in `part` since the last flush

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        part, rows = self.part, self.block_rows  # both None (float64) or both set (mixed)
        if part is None or rows is None:
            self.total.addmm_(a.T, b)
            return
        for i in range(0, a.shape[0], rows):
            ai, bi = a[i : i + rows], b[i : i + rows]
            if self.pending + ai.shape[0] > rows:
                self.flush()
            beta = 1.0 if self.pending else 0.0  # a fresh block overwrites: no zeroing pass
            part.addmm_(ai.T, bi, beta=beta)
            self.pending += ai.shape[0]

    def flush(self) -> None:
        if self.pending and self.part is not None:
            # in row slices through one small float64 buffer: no float64 copy of the whole block
            rows, cols = self.part.shape
            step = max(1, min(rows, FLUSH_ELEMENTS // cols))
            buf = torch.empty(step, cols, dtype=torch.float64, device=self.part.device)  # [step, cols]
            for i in range(0, rows, step):
                b = buf[: min(step, rows - i)].copy_(self.part[i : i + step])
                self.total[i : i + step] += b
            self.pending = 0

    def value(self) -> torch.Tensor:
        self.flush()
        return self.total


class _Side:
    """Float64 sufficient statistics of one set of layers (one side of a grid), on the inputs' device.

    `mixed`: the O(b d^2) products (Grams) are formed in float32 blocks (`_Product`); every O(b d)
    statistic (sums, squared norms) stays float64. Probe products `X^T (X V)` are accumulated in
    float64 beside them, so `gram V - probe` measures the accumulated rounding error.
    """

    def __init__(self, widths: list[int], full_gram: bool, device: torch.device | str = "cpu",
                 mixed: bool = False, block_rows: int = MIXED_BLOCK_ROWS, seed: int = 0):
        self.widths = widths
        self.offsets: list[int] = np.concatenate([[0], np.cumsum(widths)]).tolist()
        self.full_gram = full_gram
        self.device = torch.device(device)
        self.block_rows = block_rows if mixed else None
        D, L, dev = self.offsets[-1], len(widths), self.device
        self.shift: torch.Tensor | None = None  # [D] mean of the first batch
        self.s = _zeros64(D, device=dev)  # [D] sum of shifted rows
        if full_gram:
            self._gram = _Product(D, D, self.device, self.block_rows)  # [D, D]
        else:
            self._grams = [_Product(d, d, self.device, self.block_rows) for d in widths]  # [d_l, d_l]
        self.xr = _zeros64(D, L, device=dev)  # [D, L] sum_i x_i r_i^(l)
        self.rr = _zeros64(L, L, device=dev)  # [L, L] sum_i r_i^(k) r_i^(l)
        self.rsum = _zeros64(L, device=dev)  # [L] sum_i r_i
        self.row_stats = True  # xr, rr, rsum accumulated (False: a biased-only mixed pass skipped them)
        self.probes: list[torch.Tensor] = []
        # float64 probe products (mixed only): full Gram -> X^T (X_l V_l) for every l in `pgram` [D, L*K];
        # per-layer Grams -> X_l^T (X_l V_l) in `pgrams` [d_l, K] each
        self.pgram: torch.Tensor | None = None
        self.pgrams: list[torch.Tensor] = []
        if mixed:
            g = torch.Generator().manual_seed(seed)
            self.probes = [torch.randn(d, PROBES, generator=g, dtype=torch.float64).to(self.device)
                           for d in widths]  # [d_l, K] Gaussian
            self.vstack = torch.cat(self.probes)  # [D, K]: all layers' probes, for the cross product
            if full_gram:
                self.pgram = _zeros64(D, L * PROBES, device=dev)
            else:
                self.pgrams = [_zeros64(d, PROBES, device=dev) for d in widths]

    @property
    def gram(self) -> torch.Tensor:
        """[D, D] float64 Gram of the concatenated layers (full_gram only)."""
        return self._gram.value()

    @property
    def grams(self) -> list[torch.Tensor]:
        """Per-layer float64 Grams `[d_l, d_l]`."""
        return [g.value() for g in self._grams]

    def block(self, l: int) -> slice:
        return slice(self.offsets[l], self.offsets[l + 1])

    def gram_block(self, k: int, l: int) -> torch.Tensor:
        if self.full_gram:
            return self.gram[self.block(k), self.block(l)]
        if k != l:
            raise RuntimeError("self grids need full_gram=True")
        return self._grams[k].value()

    def probe(self, x: torch.Tensor) -> torch.Tensor:
        """`[b, D]` -> `[b, L*K]`: each layer's block times its own probe vectors (float64)."""
        return torch.cat([x[:, self.block(l)] @ v for l, v in enumerate(self.probes)], 1)

    def gram_error(self, k: int, l: int) -> torch.Tensor:
        """Rounding-error residual `(G_hat - G) V_l` of Gram block (k, l), `[d_k, K]` (mixed only)."""
        cols = slice(l * PROBES, (l + 1) * PROBES)
        p = self.pgram[self.block(k), cols] if self.pgram is not None else self.pgrams[k]
        return self.gram_block(k, l) @ self.probes[l] - p

    def gram_column_error(self, l: int) -> torch.Tensor:
        """Residual `(G_hat - G)[:, block l] V_l` of the whole column block l, `[D, K]` (full Gram, mixed)."""
        if self.pgram is None:
            raise RuntimeError("column residuals need full_gram=True and mixed precision")
        return self.gram[:, self.block(l)] @ self.probes[l] - self.pgram[:, l * PROBES : (l + 1) * PROBES]

    def prepare(self, mats: list[torch.Tensor], names: list[str], label: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Shifted float64 concatenation `[b, D]` and per-layer squared row norms `[b, L]`.

        One conversion pass per layer; NaN / inf show up in the row norms (checked per layer)."""
        b = mats[0].shape[0]
        x = torch.empty(b, self.offsets[-1], dtype=torch.float64, device=self.device)  # [b, D]
        for l, m in enumerate(mats):
            x[:, self.block(l)] = m  # converts (and moves to the accumulator's device)
        if self.shift is None:
            mu = x.mean(0)  # [D]
            self.shift = mu if bool(torch.isfinite(mu).all()) else torch.nan_to_num(mu, nan=0.0, posinf=0.0, neginf=0.0)
        x -= self.shift
        r = torch.stack([torch.linalg.vector_norm(x[:, self.block(l)], dim=1) for l in range(len(mats))], 1) ** 2
        bad = ~torch.isfinite(r.sum(0))  # [L]
        if bool(bad.any()):
            l = int(torch.nonzero(bad)[0])
            raise ValueError(f"{label}[{names[l]!r}]: contains NaN/inf values; CKA needs finite inputs")
        return x, r

    def raw_ss(self, l: int, n: float) -> float:
        """Sum over examples of the squared raw (unshifted) norm of layer l, from the accumulators."""
        if self.shift is None:
            raise RuntimeError("no batch added yet")
        blk, mu = self.block(l), self.shift[self.block(l)]
        rsum = self.rsum[l] if self.row_stats else torch.diagonal(self.gram_block(l, l)).sum()  # sum_i r_i
        return float(rsum + 2 * mu @ self.s[blk] + n * mu @ mu)

    def operand(self, x: torch.Tensor) -> torch.Tensor:
        """What the big products multiply: x itself (float64), or its float32 rounding (mixed)."""
        return x if self.block_rows is None else x.to(torch.float32)

    def update(self, x: torch.Tensor, r: torch.Tensor, w: torch.Tensor | None,
               x_op: torch.Tensor, xw_op: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor | None:
        """Add one shifted batch: x `[b, D]` float64, r `[b, L]`, weights w `[b]`; x_op / xw_op are
        `operand(x)` / `operand(x * w)` (shared with the cross product). Returns `(x w)^T extra`
        (`extra [b, m]`, e.g. the other side's squared norms), fused with this side's own thin
        products into one pass over x."""
        xw = x if w is None else x * w[:, None]  # [b, D]
        rw = r if w is None else r * w[:, None]  # [b, L]
        if self.full_gram:
            self._gram.add(xw_op, x_op)
        else:
            for l, g in enumerate(self._grams):
                b = self.block(l)
                g.add(xw_op[:, b], x_op[:, b])
        if self.probes:
            xv = self.probe(x)  # [b, L*K]
            if self.pgram is not None:
                self.pgram.addmm_(xw.T, xv)
            else:
                for l, p in enumerate(self.pgrams):
                    p.addmm_(xw[:, self.block(l)].T, xv[:, l * PROBES : (l + 1) * PROBES])
        L = len(self.widths)
        ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
        thin = torch.cat([r, ones] + ([] if extra is None else [extra]), 1)  # [b, L + 1 + m]
        prod = xw.T @ thin  # [D, L + 1 + m]: one pass over x for every thin product
        self.xr += prod[:, :L]
        self.s += prod[:, L]
        self.rr += rw.T @ r
        self.rsum += rw.sum(0)
        return None if extra is None else prod[:, L + 1 :]

    def cpu(self) -> _Side:
        """The statistics finalisation needs, flushed and on the CPU (results are numpy)."""
        prods = [self._gram] if self.full_gram else self._grams
        for p in prods:
            p.flush()
        if self.device.type == "cpu":
            return self
        out = object.__new__(_Side)
        out.__dict__.update(self.__dict__)
        out.shift = None if self.shift is None else self.shift.cpu()
        for k in ("s", "xr", "rr", "rsum"):
            setattr(out, k, getattr(self, k).cpu())
        out.probes = [v.cpu() for v in self.probes]
        if self.probes:
            out.vstack = self.vstack.cpu()
        out.pgram = None if self.pgram is None else self.pgram.cpu()
        out.pgrams = [p.cpu() for p in self.pgrams]
        moved = [_Product(p.total.shape[0], p.total.shape[1], torch.device("cpu"), None) for p in prods]
        for m, p in zip(moved, prods):
            m.total = p.total.cpu()
        if self.full_gram:
            out._gram = moved[0]
        else:
            out._grams = moved
        out.device = torch.device("cpu")
        return out


def _hsic_from_stats(
    c: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, n: float,
    xq: torch.Tensor, yr: torch.Tensor, rq: float, rx: float, ry: float, debiased: bool,
) -> float:
    """HSIC (up to a factor common to a CKA ratio) from feature-form statistics of one pair.

    c = X^T Y [dx, dy], sx / sy column sums, xq = X^T q, yr = Y^T r (r, q squared row norms),
    rq = r.q, rx = sum r, ry = sum q; X, Y shifted but not centred (both forms are translation
    invariant). Biased: ||X_c^T Y_c||_F^2. Debiased: HSIC_1 of Song et al. (2012), with the
    linear-kernel Gram sums written in feature form. Small per-layer work: numpy, single-threaded
    (many tiny multithreaded torch ops crawl on an oversubscribed CPU).
    """
    cn, sxn, syn, xqn, yrn = (t.numpy() for t in (c, sx, sy, xq, yr))
    if not debiased:
        cc = cn - np.outer(sxn, syn) / n
        return float((cc * cc).sum())
    if n < 4:
        raise ValueError(f"debiased CKA needs n >= 4 examples, got {n:g}")
    tr = float((cn * cn).sum()) - rq  # tr(K~ L~)
    kx = float(sxn @ sxn) - rx  # 1^T K~ 1
    ky = float(syn @ syn) - ry  # 1^T L~ 1
    kl1 = float(sxn @ cn @ syn) - float(sxn @ xqn) - float(syn @ yrn) + rq  # 1^T K~ L~ 1
    return (tr + kx * ky / ((n - 1) * (n - 2)) - 2.0 * kl1 / (n - 2)) / (n * (n - 3))


def _indicator(off: list[int], device: torch.device | None = None) -> torch.Tensor:
    """`[off[-1], len(off) - 1]` float64 0/1 matrix: row j belongs to block l (offsets `off`)."""
    ind = torch.zeros(off[-1], len(off) - 1, dtype=torch.float64, device=device)
    for l in range(len(off) - 1):
        ind[off[l] : off[l + 1], l] = 1.0
    return ind


def _block_sum(a: torch.Tensor, offx: list[int], offy: list[int]) -> np.ndarray:
    """Sums of the blocks of `a [Dx, Dy]` (float64, CPU) cut at the layer offsets -> `[Lx, Ly]`
    (two thin products with 0/1 matrices: multithreaded, one pass over `a`)."""
    return (_indicator(offx).T @ (a @ _indicator(offy))).numpy()


def _hsic_grid(
    c: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, n: float, xq: torch.Tensor, yr: torch.Tensor,
    rq: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor, offx: list[int], offy: list[int], debiased: bool,
) -> np.ndarray:
    """`_hsic_from_stats` for every (X layer, Y layer) pair at once: c `[Dx, Dy]`, xq `[Dx, Ly]`,
    yr `[Dy, Lx]`, rq `[Lx, Ly]`, rx `[Lx]`, ry `[Ly]` -> `[Lx, Ly]`."""
    if not debiased:
        cc = torch.addr(c, sx, sy, alpha=-1.0 / n)  # [Dx, Dy] centred cross product
        return _block_sum(cc.square_(), offx, offy)
    if n < 4:
        raise ValueError(f"debiased CKA needs n >= 4 examples, got {n:g}")
    rqn = rq.numpy()
    tr = _block_sum(c * c, offx, offy) - rqn
    kx = _block_sum((sx * sx)[:, None], offx, [0, 1])[:, 0] - rx.numpy()  # [Lx]
    ky = _block_sum((sy * sy)[:, None], offy, [0, 1])[:, 0] - ry.numpy()  # [Ly]
    sxcsy = _block_sum(c * torch.outer(sx, sy), offx, offy)
    sxxq = _block_sum(sx[:, None] * xq, offx, list(range(xq.shape[1] + 1)))
    syyr = _block_sum(sy[:, None] * yr, offy, list(range(yr.shape[1] + 1))).T
    kl1 = sxcsy - sxxq - syyr + rqn
    return (tr + np.outer(kx, ky) / ((n - 1) * (n - 2)) - 2.0 * kl1 / (n - 2)) / (n * (n - 3))
