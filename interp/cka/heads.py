"""Per-head linear CKA grids from pooled per-head z `[n, head, d_head]`."""
from __future__ import annotations

from typing import Literal

import numpy as np

from interp.cka.grid import cka_grid
from interp.cka.inputs import _CONST_RTOL, ArrayLike, as_matrix


def constant_heads(z: ArrayLike, name: str = "z") -> list[int]:
    """Heads of `z [n, head, d_head]` with zero variance across examples (e.g. a zeroed value projection):
    CKA with them is undefined. Same criterion as the accumulator's zero-variance check."""
    z = as_matrix(z, name, allow_3d=True)
    if z.ndim != 3:
        raise ValueError(f"{name}: expected [n, head, d_head], got {tuple(z.shape)}")
    var = ((z - z.mean(0)) ** 2).sum((0, 2))  # [head] centred
    raw = (z * z).sum((0, 2))  # [head]
    return [h for h in range(z.shape[1]) if not var[h] > _CONST_RTOL * raw[h]]


def head_cka_grid(zx: ArrayLike, zy: ArrayLike | None = None, debiased: bool = False,
                  constant: Literal["raise", "nan"] = "raise") -> np.ndarray:
    """Per-head CKA from pooled per-head z: `zx [n, Hx, dx]` x `zy [n, Hy, dy]` -> `[Hx, Hy]`.

    With `zy=None`, the head x head grid of `zx` against itself. A head with zero variance across
    examples (`constant_heads`) raises a `ValueError` naming it, or with `constant="nan"` gets NaN in
    its row / column.
    """
    if constant not in ("raise", "nan"):
        raise ValueError(f"constant must be 'raise' or 'nan', not {constant!r}")
    zx = as_matrix(zx, "zx", allow_3d=True)
    zy = None if zy is None else as_matrix(zy, "zy", allow_3d=True)
    dead = {k: constant_heads(v, k) for k, v in (("zx", zx), ("zy", zy)) if v is not None}
    if constant == "raise":
        for k, heads in dead.items():
            if heads:
                raise ValueError(f"{k}: head {heads[0]} is constant across examples (zero variance): CKA is "
                                 "undefined. Pass constant='nan' to get NaN for such heads.")
    live_x = [h for h in range(zx.shape[1]) if h not in dead["zx"]]
    xs = [zx[:, h] for h in live_x]
    if zy is None:
        out = np.full((zx.shape[1], zx.shape[1]), np.nan)
        if xs:
            out[np.ix_(live_x, live_x)] = cka_grid(xs, None, debiased)["xx"]
        return out
    live_y = [h for h in range(zy.shape[1]) if h not in dead["zy"]]
    out = np.full((zx.shape[1], zy.shape[1]), np.nan)
    if xs and live_y:
        out[np.ix_(live_x, live_y)] = cka_grid(xs, [zy[:, h] for h in live_y], debiased)["xy"]
    return out
