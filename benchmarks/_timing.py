"""Shared timing for benchmarks: interleaved repeats, medians with ranges, and the machine they ran on.

A single timing lets a noisy neighbour decide a headline ratio. ``interleaved`` runs every contender once
per round, in a rotating order, for ``repeats`` rounds, so slow spells hit all of them; ``ratio`` then
reports the median ratio over rounds and its range (min-max), which is what the README quotes.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any


def machine() -> str:
    """One line naming the device and thread count the numbers were measured on."""
    import torch

    dev = f"CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU"
    return (f"{dev}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads")


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int = 3, warmup: bool = True,
                sync: Callable[[], None] | None = None, self_timed: bool = False) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` rounds, order rotated each round.

    ``self_timed``: each function returns the seconds it measured itself (e.g. a worker subprocess timing
    only its computation, not interpreter start-up); that is recorded instead of the wall time."""
    names = list(fns)
    if warmup:
        for n in names:
            fns[n]()
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            if sync:
                sync()
            t0 = time.perf_counter()
            own = fns[n]()
            if sync:
                sync()
            out[n].append(float(own) if self_timed else time.perf_counter() - t0)
    return out


def summary(seconds: list[float]) -> str:
    """``median s [min-max]`` of one contender's timings."""
    return f"{statistics.median(seconds):.3f} s [{min(seconds):.3f}-{max(seconds):.3f}]"


def ratio(slow: list[float], fast: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of the per-round ratio slow / fast (rounds paired by index)."""
    rs = [s / f for s, f in zip(slow, fast)]
    return statistics.median(rs), min(rs), max(rs)


def ratio_text(slow: list[float], fast: list[float]) -> str:
    m, lo, hi = ratio(slow, fast)
    return f"{m:.2f}x [{lo:.2f}-{hi:.2f}] over {len(slow)} interleaved rounds"
