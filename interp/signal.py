"""The no-signal guard and numeric checks, in one place.

Every normalised attribution divides by a gap: clean minus corrupted (patching, attribution,
circuits) or teacher minus student (restoration, weight patching). When that gap cannot be told
apart from zero, the ratio is noise with a large magnitude (scores in the thousands, circuits with
"faithfulness" 600). `measure_gap` bounds the gap with a paired bootstrap interval over examples;
`require_signal` refuses to normalise by a gap whose interval includes 0 (or that is under `min_z`
standard errors), unless the caller passes `allow_no_signal=True`, in which case the result is
marked with the flag and normalised values are NaN (raw values stay).

`check_finite` turns a NaN or inf anywhere in a forward pass into an error that names where.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

MIN_Z = 2.0  # a gap must be at least this many standard errors from 0 (and its 95% interval exclude 0)


class NoSignalError(ValueError):
    """The gap a normalised score divides by cannot be told apart from zero."""


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().double().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def gap_share(m: np.ndarray) -> np.ndarray:
    """Column means [..., 3] (a, b, x) -> (x - b) / (a - b): the share of the a - b gap that x recovers
    (restoration, faithfulness); inf or NaN where a = b. Vectorised for `bootstrap_ci(of_means=...)`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (m[..., 2] - m[..., 1]) / (m[..., 0] - m[..., 1])


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                 stat: Callable[[np.ndarray], float] | None = None,
                 of_means: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval over examples (rows of `values`) of `stat` (default: mean).

    `of_means`: a statistic of the column means, vectorised over resamples ([n_boot, columns] ->
    [n_boot]), e.g. a ratio of mean differences; the same resamples as `stat`, without a Python call each."""
    values = _numpy(values)
    rng = np.random.default_rng(seed)
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    idx = rng.integers(0, n, (n_boot, n))
    if of_means is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            boots = np.asarray(of_means(values[idx].mean(axis=1)), dtype=np.float64)  # [n_boot]
    elif stat is None:
        if values.ndim != 1:
            raise ValueError(f"bootstrap_ci of the mean takes one value per example, got shape {values.shape}.")
        boots = values[idx].mean(axis=1)
    else:
        boots = np.array([stat(values[i]) for i in idx])
    boots = boots[np.isfinite(boots)]  # a ratio is undefined on resamples where its denominator is 0
    if boots.size == 0:
        return float("nan"), float("nan")
    return float(np.quantile(boots, alpha / 2)), float(np.quantile(boots, 1 - alpha / 2))


@dataclass(frozen=True)
class Signal:
    """A paired gap mean(a - b) over n examples, with its bootstrap 95% interval and standard error."""

    gap: float
    ci95: tuple[float, float]
    se: float
    n: int
    significant: bool
    what: str = "gap"
    min_z: float = MIN_Z

    def describe(self) -> str:
        z = abs(self.gap) / self.se if self.se > 0 else float("inf") if self.gap != 0 else 0.0
        return (f"{self.what} {self.gap:+.4g} (95% CI [{self.ci95[0]:+.4g}, {self.ci95[1]:+.4g}], "
                f"{z:.2f} standard errors, n = {self.n})")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d


def measure_gap(a: Any, b: Any, what: str = "gap", n_boot: int = 1000, seed: int = 0,
                min_z: float = MIN_Z) -> Signal:
    """The paired gap mean(a_i - b_i) over examples, with a bootstrap interval.

    Significant when the 95% interval excludes 0 and |gap| >= min_z standard errors. A constant
    nonzero difference (every pair moves by the same amount) is significant; one example, or a zero
    gap, never is.
    """
    d = _numpy(a) - _numpy(b)
    if d.ndim != 1:
        raise ValueError(f"measure_gap takes one value per example, got shape {d.shape}.")
    n = int(d.size)
    if n == 0:
        raise ValueError(f"{what}: no examples; the gap of an empty set is undefined. Pass at least two pairs.")
    if not np.isfinite(d).all():
        raise FloatingPointError(f"{what}: {int((~np.isfinite(d)).sum())} of {n} per-example values are NaN or "
                                 "inf; check the models' weights and inputs.")
    gap = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    lo, hi = bootstrap_ci(d, n_boot, seed)
    if n > 1 and se == 0.0:
        lo = hi = gap
    significant = n > 1 and gap != 0.0 and not (lo <= 0.0 <= hi) and abs(gap) >= min_z * se
    return Signal(gap, (lo, hi), se, n, bool(significant), what, min_z)


def require_signal(signal: Signal, allow_no_signal: bool = False, fix: str = "") -> bool:
    """True when the gap is significant. Otherwise raise NoSignalError, or with `allow_no_signal`
    return False: the caller then marks its result and leaves normalised values NaN."""
    if signal.significant:
        return True
    if allow_no_signal:
        return False
    raise NoSignalError(
        f"No signal to normalise by: the {signal.describe()} cannot be told apart from 0, so shares of it would "
        f"be ratios of noise. {fix or 'Use inputs or a metric with a real difference, more examples'}; or pass "
        "allow_no_signal=True (CLI: --allow-no-signal) to get raw, unnormalised values marked 'no signal'.")


def normalise_or_nan(raw: torch.Tensor, low: float, high: float, ok: bool) -> torch.Tensor:
    """(raw - low) / (high - low) when the gap passed the guard, else NaN of raw's shape."""
    if not ok or high == low:
        return torch.full_like(raw, float("nan"))
    return (raw - low) / (high - low)


def check_finite(x: torch.Tensor, where: str) -> torch.Tensor:
    """Raise FloatingPointError naming `where` (e.g. "teacher, blocks.2.attn.hook_z") on NaN or inf."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise FloatingPointError(f"{bad} of {x.numel()} values are NaN or inf at {where}: check the model's weights "
                                 "(e.g. a NaN parameter) and the inputs; results downstream would be meaningless.")
    return x
