"""Node scores: every head's and MLP's effect by activation patching (exact) or attribution patching
(atp, ig), normalised by the clean - corrupted gap after the no-signal guard."""
from __future__ import annotations

import math
from typing import Any

from interp.contrast import Contrast
from interp.patching import patch
from interp.signal import Signal, require_signal


def _signal_of(result: Any) -> Signal:
    d = dict(result.signal)
    d["ci95"] = tuple(d["ci95"])
    return Signal(**d)


def _node_effects(subject: Any, contrast: Contrast, method: str, direction: str, batch_size: int, steps: int = 8
                  ) -> tuple[dict[str, float], float, float, Signal]:
    """Unnormalised effect of every head and MLP (the metric change, signed like importance:
    m_clean - m for noising, m - m_corrupt for denoising), the endpoint means and the gap."""
    kw: dict[str, Any] = dict(batch_size=batch_size, allow_no_signal=True)  # the caller judges the signal
    if method == "exact":
        heads = patch(subject, contrast, "head", False, direction, **kw)
        mlps = patch(subject, contrast, "mlp_out", False, direction, **kw)
    elif method in ("atp", "ig"):
        from interp.attribution import attribute
        heads = attribute(subject, contrast, "head", False, direction, method=method, steps=steps, **kw)
        mlps = attribute(subject, contrast, "mlp_out", False, direction, method=method, steps=steps, **kw)
    else:
        raise ValueError(f"method must be 'exact', 'atp' or 'ig', not {method!r}.")
    clean, corrupt = heads.clean_metric, heads.corrupt_metric
    effect = (lambda m: clean - m) if direction == "noise" else (lambda m: m - corrupt)
    out = {}
    for l in range(subject.n_layers):
        for h in range(subject.n_heads):
            out[f"L{l}H{h}"] = float(effect(float(heads.raw[l, h])))
        out[f"L{l}M"] = float(effect(float(mlps.raw[l])))
    return out, clean, corrupt, _signal_of(heads)


def _normalised(effects: dict[str, float], clean: float, corrupt: float, ok: bool) -> dict[str, float]:
    gap = clean - corrupt
    return {k: (v / gap if ok else math.nan) for k, v in effects.items()}


def node_scores(subject: Any, contrast: Contrast, method: str = "exact", direction: str = "noise",
                batch_size: int = 32, allow_no_signal: bool = False) -> tuple[dict[str, float], float, float]:
    """Importance of every head and MLP; also (m_clean, m_corrupt). NoSignalError when the gap is not
    significant; with `allow_no_signal` the scores are NaN then (raw changes: discover(..., allow_no_signal=True))."""
    effects, clean, corrupt, sig = _node_effects(subject, contrast, method, direction, batch_size)
    ok = _require(sig, allow_no_signal)
    return _normalised(effects, clean, corrupt, ok), clean, corrupt


def _require(sig: Signal, allow_no_signal: bool) -> bool:
    fix = "Use pairs whose clean and corrupted inputs differ in the behaviour (a model with a real effect), more pairs"
    return require_signal(sig, allow_no_signal, fix=fix)

