"""Input validation and conversion shared by every CKA estimator: `[n, d]` float64 tensors, Captures,
layer dicts / lists, example-id alignment, row batching."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray
# a set of layers: {name: [n, d]}, a list of [n, d], or one [n, d]
Layers = Mapping[str, ArrayLike] | Sequence[ArrayLike] | ArrayLike
Kernel = Literal["linear", "rbf"]

# An (almost) all-constant representation: centred variance below this fraction of the raw mean
# square cannot be told apart from rounding noise in float64.
_CONST_RTOL = 1e-20


def as_matrix(x: ArrayLike, name: str = "x", allow_3d: bool = False, convert: bool = True,
              keep_device: bool = False) -> torch.Tensor:
    """Validate and convert a representation to a float64 torch tensor `[n, d]` (or `[n, h, d]`).

    Raises `ValueError` for 3-D input (unless `allow_3d`), for 1-D / empty input and for NaN / inf.
    `convert=False` checks the shape only and keeps the dtype and device (the accumulator converts and
    checks finiteness itself, in one pass); `keep_device=True` converts to float64 on the input's device.
    """
    t = torch.as_tensor(x)
    if t.is_complex() or not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name}: expected a real numeric array, got dtype {t.dtype}")
    if t.ndim == 3 and not allow_3d:
        raise ValueError(
            f"{name}: got a 3-D array {tuple(t.shape)} (e.g. [n, pos, d]); CKA needs one vector per "
            "example. Choose a pooling first (capture(..., pool='cls' | 'mean')), or use "
            "head_cka_grid for [n, head, d_head]."
        )
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim not in ((2, 3) if allow_3d else (2,)):
        raise ValueError(f"{name}: expected a 2-D array [n, d], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[-1] == 0:
        raise ValueError(f"{name}: empty array of shape {tuple(t.shape)}")
    if not convert:
        return t.detach()  # the streaming accumulator works on the inputs' device
    t = t.detach().to(device=t.device if keep_device else "cpu", dtype=torch.float64)
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: contains {bad} NaN/inf values; CKA needs finite inputs")
    return t


def _acts(xs: object) -> object:
    """A Capture's `.acts` (site -> [n, d]); anything else unchanged."""
    acts = getattr(xs, "acts", None)
    return acts if isinstance(acts, Mapping) and hasattr(xs, "ids") else xs


def _check_ids(xs: object, ys: object) -> None:
    """Two Captures must hold the same examples in the same order."""
    ix, iy = getattr(xs, "ids", None), getattr(ys, "ids", None)
    if ix is not None and iy is not None and list(ix) != list(iy):
        first = next((i for i, (a, b) in enumerate(zip(ix, iy)) if a != b), min(len(ix), len(iy)))
        raise ValueError(f"The two captures hold different examples (first difference at row {first} of "
                         f"{len(ix)} / {len(iy)}): capture both models on the same data.")


def _names_and_mats(
    xs: Layers | object, side: str, convert: bool = True, keep_device: bool = False,
) -> tuple[list[str], list[torch.Tensor]]:
    """Layer names and `[n, d]` tensors of a mapping, a sequence, one array or a Capture (`object`)."""
    src = _acts(xs)
    if isinstance(src, Mapping):
        names = [str(k) for k in src]
        mats = [as_matrix(v, f"{side}[{k!r}]", convert=convert, keep_device=keep_device) for k, v in src.items()]
    elif isinstance(src, (torch.Tensor, np.ndarray)):
        names, mats = ["0"], [as_matrix(src, side, convert=convert, keep_device=keep_device)]
    elif isinstance(src, Iterable):
        mats = [as_matrix(v, f"{side}[{i}]", convert=convert, keep_device=keep_device) for i, v in enumerate(src)]
        names = [str(i) for i in range(len(mats))]
    else:
        raise TypeError(f"{side}: expected layers (a mapping, a list of arrays, an array or a Capture), "
                        f"got {type(src).__name__}")
    if not mats:
        raise ValueError(f"{side}: no representations given")
    return names, mats


def _batched(mats: list[torch.Tensor], batch_size: int) -> Iterable[list[torch.Tensor]]:
    n = mats[0].shape[0]
    for i in range(0, n, batch_size):
        yield [m[i : i + batch_size] for m in mats]


def _rows_per_batch(width: int, budget_bytes: float = 256e6) -> int:
    return max(64, int(budget_bytes // (8 * max(width, 1))))
