"""Fast update of a mixed-precision cross accumulator (X layers vs Y layers, per-layer Grams, no weights).

One pass over the batch in chunks of `CHUNK_ROWS` rows that stay in cache: each chunk is copied once into
shifted float64 rows, which give every O(b d) statistic (column sums; for debiased CKA also row norms and
the thin products X^T [r | q], Y^T [q | r]) and the float64 probe products X^T (Y V) and X_l^T (X_l V_l)
of the error bound (`interp.cka.precision`); their float32 rounding goes into a block of `block_rows`
rows, and each full block costs one float32 product `[Dx, B] @ [B, Dy]` for the whole grid plus one
per-layer Gram, added to the float64 totals (`_Product`). The float32 operands are the correctly rounded
shifted rows, so the probes (made from the float64 rows) measure operand rounding and product rounding
together. Biased-only accumulators (`biased_only`, what `cka_grid` builds for biased CKA) go layer by
layer through a chunk, so each `[c, d]` float64 block stays in a core's L2 for its four uses.
Memory: chunk buffers and two float32 blocks, independent of the batch size.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from interp.cka.linear_stats import PROBES, _indicator, _Side

if TYPE_CHECKING:
    from interp.cka.accumulator import CKAAccumulator

# Rows per float64 chunk: one layer's [CHUNK_ROWS, d] float64 (biased pass; 1.5 MB at d = 384) stays in
# a core's L2, the whole [CHUNK_ROWS, Dx + Dy] (debiased) in the shared L3; the per-chunk Python work
# (~10 small ops per layer) stays below 10%. 1024 measured the same as 512 (within noise).
CHUNK_ROWS = 512


def _set_shift(side: _Side, mats: list[torch.Tensor]) -> None:
    """The per-column reference the rows are shifted by: float64 mean of the first rows (<= 1024) of
    the first batch. Any reference gives the same CKA; one near the mean keeps the float32 rounding of
    the shifted rows small (large-mean columns would otherwise lose their variance to cancellation)."""
    if side.shift is not None:
        return
    mu = torch.cat([m[:1024].to(device=side.device, dtype=torch.float64).mean(0) for m in mats])  # [D]
    side.shift = torch.nan_to_num(mu, nan=0.0, posinf=0.0, neginf=0.0)


def _fill(side: _Side, mats: list[torch.Tensor], rows: slice, out: torch.Tensor) -> torch.Tensor:
    """Shifted float64 rows `[c, D]` of the concatenated layers, written into `out`."""
    shift = side.shift
    if shift is None:
        raise RuntimeError("_set_shift first")
    for l, m in enumerate(mats):
        blk = side.block(l)
        out[:, blk].copy_(m[rows]).sub_(shift[blk])  # float64: converts (and moves), then shifts in cache
    return out


def _row_norms(x: torch.Tensor, ind: torch.Tensor, sq: torch.Tensor, names: list[str], label: str) -> torch.Tensor:
    """`[c, L]` squared row norms per layer (`ind` [D, L] 0/1, `sq` a `[c, D]` scratch buffer); NaN / inf
    in a layer show up in its column sum."""
    r = torch.mul(x, x, out=sq) @ ind
    if not bool(torch.isfinite(r.sum())):  # NaN * 0 spreads over every column of r: find the layer
        l = next(k for k in range(ind.shape[1]) if not bool(torch.isfinite(x[:, ind[:, k] > 0]).all()))
        raise ValueError(f"{label}[{names[l]!r}]: contains NaN/inf values; CKA needs finite inputs")
    return r


def mixed_cross_update(acc: CKAAccumulator, x: _Side, y: _Side, xm: list[torch.Tensor], ym: list[torch.Tensor],
                       xn: list[str], yn: list[str]) -> None:
    """Add one unweighted batch (`[b, d]` per layer, any float dtype / device) to a mixed cross accumulator.

    Same statistics as `CKAAccumulator.update`'s general path (only the biased ones for `biased_only`).
    A batch with NaN / inf raises after the chunks (biased only: the blocks) before it were added: the
    accumulator is then unusable."""
    _set_shift(x, xm)
    _set_shift(y, ym)
    b, dev, f64 = xm[0].shape[0], x.device, torch.float64
    nblk = -(-b // (x.block_rows or b))
    blk = -(-b // nblk)  # equal blocks of at most block_rows rows
    ch = min(CHUNK_ROWS, blk)
    x32 = torch.empty(blk, x.offsets[-1], dtype=torch.float32, device=dev)  # [B, Dx]
    y32 = torch.empty(blk, y.offsets[-1], dtype=torch.float32, device=dev)  # [B, Dy]
    if acc.biased_only:
        x.row_stats = y.row_stats = False
        buf = torch.empty(ch * max(x.widths + y.widths), dtype=f64, device=dev)  # one layer's chunk
        thin = torch.ones(ch, 2 * PROBES + 1, dtype=f64, device=dev)  # [c, 2K + 1]: [x_l V_l | y V | 1]
    else:
        bufs = [torch.empty(ch, side.offsets[-1], dtype=f64, device=dev) for side in (x, y, x, y)]
        ind = (_indicator(x.offsets, dev), _indicator(y.offsets, dev))  # [D, L] 0/1 layer indicators
        ones = torch.ones(ch, 1, dtype=f64, device=dev)
    for i in range(0, b, blk):
        bb = min(blk, b - i)
        for j in range(0, bb, ch):
            c = min(ch, bb - j)
            rows = slice(i + j, i + j + c)
            if acc.biased_only:
                _chunk_biased(acc, x, y, xm, ym, rows, buf, thin[:c], x32[j : j + c], y32[j : j + c])
            else:
                xc, yc = _fill(x, xm, rows, bufs[0][:c]), _fill(y, ym, rows, bufs[1][:c])  # [c, Dx], [c, Dy]
                _chunk_all(acc, x, y, xc, yc, ones[:c], (xn, yn), (bufs[2][:c], bufs[3][:c]), ind)
                x32[j : j + c].copy_(xc)  # float32 rounding of the shifted rows
                y32[j : j + c].copy_(yc)
        if acc.biased_only:  # no row norms to catch NaN / inf: the column sums carry them
            _check_finite(x.s, x, xn, "x")
            _check_finite(y.s, y, yn, "y")
        acc._c.add(x32[:bb], y32[:bb])  # one [Dx, B] @ [B, Dy] float32 product for the whole grid
        for side, z in ((x, x32[:bb]), (y, y32[:bb])):
            for l, g in enumerate(side._grams):
                zl = z[:, side.block(l)]
                g.add(zl, zl)


def _chunk_biased(acc: CKAAccumulator, x: _Side, y: _Side, xm: list[torch.Tensor], ym: list[torch.Tensor],
                  rows: slice, buf: torch.Tensor, thin: torch.Tensor, x32: torch.Tensor, y32: torch.Tensor) -> None:
    """Column sums and probe products of one chunk, layer by layer (Y first: the cross probe needs y V).

    buf: flat float64 scratch for one layer's `[c, d]`; thin `[c, 2K + 1]` (last column ones);
    x32 `[c, Dx]`, y32 `[c, Dy]`: where the float32 rounding of the shifted rows goes."""
    K, c = PROBES, thin.shape[0]
    yv = thin[:, K : 2 * K]  # [c, K] sum over Y layers of y_l V_l = (y V) with V = y.vstack
    yv.zero_()
    for side, mats, z32 in ((y, ym, y32), (x, xm, x32)):
        shift = side.shift
        if shift is None:
            raise RuntimeError("_set_shift first")
        for l, m in enumerate(mats):
            blk, v = side.block(l), side.probes[l]
            z = buf[: c * v.shape[0]].view(c, v.shape[0]).copy_(m[rows]).sub_(shift[blk])  # [c, d] shifted
            zv = z @ v  # [c, K]
            if side is y:
                yv += zv
                t = torch.cat([zv, thin[:, 2 * K :]], 1)  # [c, K + 1]: [y_l V_l | 1]
            else:
                thin[:, :K] = zv
                t = thin  # [c, 2K + 1]: [x_l V_l | y V | 1]
            p = z.T @ t  # [d, K + 1] or [d, 2K + 1]
            side.pgrams[l] += p[:, :K]  # X_l^T (X_l V_l): the Gram's probe
            side.s[blk] += p[:, -1]
            if side is x:
                acc.pc[blk] += p[:, K : 2 * K]  # sum_i x_i (y_i V): the cross product's probe
            z32[:, blk] = z  # float32 rounding of the shifted rows


def _chunk_all(acc: CKAAccumulator, x: _Side, y: _Side, xc: torch.Tensor, yc: torch.Tensor, ones: torch.Tensor,
               names: tuple[list[str], list[str]], sq: tuple[torch.Tensor, torch.Tensor],
               ind: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Every O(c d) statistic of a chunk (biased and debiased CKA) and its probe products: xc `[c, Dx]`,
    yc `[c, Dy]` shifted rows, ones `[c, 1]`; sq: `[c, D]` scratch per side; ind: `[D, L]` 0/1 layer
    indicators per side."""
    Lx, Ly = len(x.widths), len(y.widths)
    rx = _row_norms(xc, ind[0], sq[0], names[0], "x")  # [c, Lx]
    ry = _row_norms(yc, ind[1], sq[1], names[1], "y")  # [c, Ly]
    xv = [xc[:, x.block(l)] @ v for l, v in enumerate(x.probes)]  # [c, K] per X layer
    yv = [yc[:, y.block(l)] @ v for l, v in enumerate(y.probes)]  # [c, K] per Y layer
    px = xc.T @ torch.cat([rx, ones, ry, torch.stack(yv).sum(0)], 1)  # [Dx, Lx + 1 + Ly + K]
    x.xr += px[:, :Lx]
    x.s += px[:, Lx]
    acc.xq += px[:, Lx + 1 : Lx + 1 + Ly]  # sum_i x_i q_i
    acc.pc += px[:, Lx + 1 + Ly :]  # sum_i x_i (y_i V), V = y.vstack: the cross product's probe
    py = yc.T @ torch.cat([ry, ones, rx], 1)  # [Dy, Ly + 1 + Lx]
    y.xr += py[:, :Ly]
    y.s += py[:, Ly]
    acc.yr += py[:, Ly + 1 :]  # sum_i y_i r_i
    acc.rq += rx.T @ ry
    for side, z, r, zv in ((x, xc, rx, xv), (y, yc, ry, yv)):
        side.rr += r.T @ r
        side.rsum += r.sum(0)
        for l, p in enumerate(side.pgrams):  # X_l^T (X_l V_l): the Grams' probes
            p.addmm_(z[:, side.block(l)].T, zv[l])


def _check_finite(s: torch.Tensor, side: _Side, names: list[str], label: str) -> None:
    """NaN / inf anywhere in a layer make its float64 column sums `s` `[D]` non-finite."""
    ok = torch.isfinite(s)
    if not bool(ok.all()):
        l = next(k for k in range(len(side.widths)) if not bool(ok[side.block(k)].all()))
        raise ValueError(f"{label}[{names[l]!r}]: contains NaN/inf values; CKA needs finite inputs")
