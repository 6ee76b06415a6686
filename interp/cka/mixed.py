"""Fast update of a mixed-precision cross accumulator (X layers vs Y layers, per-layer Grams, no weights).

One pass over the batch in chunks of `CHUNK_ROWS` rows that stay in cache: each chunk is copied once into
a shifted float64 buffer, which gives every O(b d) statistic (row norms, column sums, the thin products
X^T [r | q] and Y^T [q | r]) and the float64 probe products X^T (Y V) and X_l^T (X_l V_l) of the error
bound (`interp.cka.precision`); its float32 rounding goes into a block of `block_rows` rows, and each
full block costs one float32 product `[Dx, B] @ [B, Dy]` for the whole grid plus one per-layer Gram,
added to the float64 totals (`_Product`). The float32 operands are the correctly rounded shifted rows,
so the probes (made from the float64 rows) measure operand rounding and product rounding together.
Memory: two chunk buffers and two float32 blocks, independent of the batch size.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from interp.cka.linear_stats import _indicator, _Side

if TYPE_CHECKING:
    from interp.cka.accumulator import CKAAccumulator

# Rows per float64 chunk: [CHUNK_ROWS, Dx + Dy] float64 stays in a core's L2 / the shared L3 for
# grids of a few thousand columns; the per-chunk Python work (~60 small ops) stays below 10%.
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
        torch.sub(m[rows].to(out.device), shift[blk], out=out[:, blk])  # float64: converts and shifts
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

    Same statistics as `CKAAccumulator.update`'s general path. A batch with NaN / inf raises after the
    chunks before it were added: the accumulator is then unusable."""
    _set_shift(x, xm)
    _set_shift(y, ym)
    b, dev, f64 = xm[0].shape[0], x.device, torch.float64
    Lx, Ly = len(x.widths), len(y.widths)
    nblk = -(-b // (x.block_rows or b))
    blk = -(-b // nblk)  # equal blocks of at most block_rows rows
    ch = min(CHUNK_ROWS, blk)
    xbuf = torch.empty(ch, x.offsets[-1], dtype=f64, device=dev)  # [c, Dx]
    ybuf = torch.empty(ch, y.offsets[-1], dtype=f64, device=dev)  # [c, Dy]
    x32 = torch.empty(blk, x.offsets[-1], dtype=torch.float32, device=dev)  # [B, Dx]
    y32 = torch.empty(blk, y.offsets[-1], dtype=torch.float32, device=dev)  # [B, Dy]
    ones = torch.ones(ch, 1, dtype=f64, device=dev)
    indx, indy = _indicator(x.offsets, dev), _indicator(y.offsets, dev)
    sqx, sqy = torch.empty_like(xbuf), torch.empty_like(ybuf)  # scratch for the row norms
    for i in range(0, b, blk):
        bb = min(blk, b - i)
        for j in range(0, bb, ch):
            c = min(ch, bb - j)
            rows = slice(i + j, i + j + c)
            xc, yc = _fill(x, xm, rows, xbuf[:c]), _fill(y, ym, rows, ybuf[:c])  # [c, Dx], [c, Dy]
            rx, ry = _row_norms(xc, indx, sqx[:c], xn, "x"), _row_norms(yc, indy, sqy[:c], yn, "y")  # [c, Lx], [c, Ly]
            xv = [xc[:, x.block(l)] @ v for l, v in enumerate(x.probes)]  # [c, K] per X layer
            yv = [yc[:, y.block(l)] @ v for l, v in enumerate(y.probes)]  # [c, K] per Y layer
            px = xc.T @ torch.cat([rx, ones[:c], ry, torch.stack(yv).sum(0)], 1)  # [Dx, Lx + 1 + Ly + K]
            x.xr += px[:, :Lx]
            x.s += px[:, Lx]
            acc.xq += px[:, Lx + 1 : Lx + 1 + Ly]  # sum_i x_i q_i
            acc.pc += px[:, Lx + 1 + Ly :]  # sum_i x_i (y_i V), V = y.vstack: the cross product's probe
            py = yc.T @ torch.cat([ry, ones[:c], rx], 1)  # [Dy, Ly + 1 + Lx]
            y.xr += py[:, :Ly]
            y.s += py[:, Ly]
            acc.yr += py[:, Ly + 1 :]  # sum_i y_i r_i
            acc.rq += rx.T @ ry
            for side, z, r, zv in ((x, xc, rx, xv), (y, yc, ry, yv)):
                side.rr += r.T @ r
                side.rsum += r.sum(0)
                for l, p in enumerate(side.pgrams):  # X_l^T (X_l V_l): the Grams' probes
                    p.addmm_(z[:, side.block(l)].T, zv[l])
            x32[j : j + c].copy_(xc)  # float32 rounding of the shifted rows
            y32[j : j + c].copy_(yc)
        acc._c.add(x32[:bb], y32[:bb])  # one [Dx, B] @ [B, Dy] float32 product for the whole grid
        for side, z in ((x, x32[:bb]), (y, y32[:bb])):
            for l, g in enumerate(side._grams):
                zl = z[:, side.block(l)]
                g.add(zl, zl)
