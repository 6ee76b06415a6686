"""Attribution patching: a linear estimate of every activation-patching score at once.

`method="atp"` (Nanda 2023; Syed et al. 2023): one forward and backward on the base input, one forward
on the source input; the effect of patching component c is estimated as
`(a_src[c] - a_base[c]) . dm/da[c]` evaluated on the base run.

`method="ig"` (integrated gradients, as in EAP-IG, Hanna et al. 2024): the gradient is averaged over
`steps` points on the straight line between the base and source embedding outputs (midpoint rule,
alpha = (k + 0.5) / steps), then dotted with the same activation difference. It costs `steps`
forward/backward passes and fixes most of the saturation errors of the one-point estimate.

Same components, axes and normalisation as `interp.patching.patch` (base = corrupted for "denoise",
clean for "noise"): the estimated metric `m_base + effect` is reported as
`(m - m_corrupt) / (m_clean - m_corrupt)`, so results compare element-wise with exact patching.
The same no-signal guard applies (NoSignalError, or with `allow_no_signal=True` NaN scores, the raw
estimate and `no_signal=True`), and a NaN or inf in a site value or gradient raises
FloatingPointError naming the model and site.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from interp.contrast import Contrast, metric_values
from interp.engine import layer_inputs, run_from
from interp.patching import (
    SITE_OF,
    PatchResult,
    _pair_inputs,
    _shape,
    axes_for,
    check_component,
    check_pairs,
    gap_signal,
)
from interp.signal import check_finite, normalise_or_nan


def _identity(v: torch.Tensor) -> torch.Tensor:
    return v


def _contract(component: str, per_position: bool, x: torch.Tensor) -> torch.Tensor:
    """Sum a per-element attribution over batch (and positions unless per_position) to result axes."""
    if component == "head":                         # [B, pos, head, d_head]
        t = x.sum(dim=(0, 3))                       # [pos, head]
        return t.T.contiguous() if per_position else t.sum(0)  # [head, pos] | [head]
    t = x.sum(dim=(0, 2))                           # [pos]
    return t if per_position else t.sum(0, keepdim=True)[0]


def site_gradients(subject: Any, metric: Any, base: dict, sites: Sequence[str], h0: torch.Tensor | None = None,
                   kwargs: dict | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per-example metric [B] (float64), site values and d(sum metric)/d(site) for one run.

    With `h0` the run starts from that embedding output (used for interpolation), else from `base`.
    """
    write = {s: _identity for s in sites}  # identity writes put each site's value on the gradient path
    with torch.enable_grad():
        if h0 is None:
            logits, cache = subject.run(base, read=list(sites), write=write, grad=True)
        else:
            logits, cache = run_from(subject, 0, h0, kwargs or {}, read=list(sites), write=write)
        m = metric_values(metric, logits)  # [B]
        grads = torch.autograd.grad(m.sum(), [cache[s] for s in sites], allow_unused=True)
    out = {s: (g if g is not None else torch.zeros_like(cache[s])) for s, g in zip(sites, grads)}
    return m.detach().double().cpu(), {s: cache[s].detach() for s in sites}, out


def _check_sites(subject: Any, values: dict[str, torch.Tensor], sites: Sequence[str], what: str) -> None:
    """FloatingPointError naming the first site (forward order) with a NaN or inf."""
    for s in sites:
        check_finite(values[s], f"{subject.name}, {s} ({what})")


def attribute(subject: Any, contrast: Contrast, component: str = "head", per_position: bool = False,
              direction: str = "denoise", method: str = "atp", steps: int = 8, batch_size: int = 32,
              allow_no_signal: bool = False) -> PatchResult:
    """Attribution-patching estimate of `patch(subject, contrast, component, per_position, direction)`,
    with the same no-signal guard (`allow_no_signal`)."""
    check_component(subject, component)
    subject.check_ready()
    check_pairs(contrast)
    if method not in ("atp", "ig"):
        raise ValueError(f"method must be 'atp' or 'ig', not {method!r}.")
    if component == "resid" and not per_position:
        raise ValueError("use per_position=True for 'resid' (see interp.patching).")
    L = subject.n_layers
    sites = [f"blocks.{l}.{SITE_OF[component]}" for l in range(L)]
    n_pos = contrast.n_pos
    total = torch.zeros(_shape(subject, component, per_position, n_pos), dtype=torch.float64)
    m_base_all: list[torch.Tensor] = []  # per batch [B]
    m_src_all: list[torch.Tensor] = []
    names = ("corrupted", "clean") if direction == "denoise" else ("clean", "corrupted")
    for b in contrast.batches(batch_size):
        base, src = _pair_inputs(direction, b)
        with torch.no_grad():
            src_logits, src_cache = subject.run(src, read=sites)
        _check_sites(subject, src_cache, sites, f"{names[1]} input")
        check_finite(src_logits, f"{subject.name}, logits ({names[1]} input)")
        m_src_all.append(metric_values(contrast.metric, src_logits).double().cpu())
        if method == "atp":
            m_base, base_vals, grads = site_gradients(subject, contrast.metric, base, sites)
        else:
            with torch.no_grad():
                e_base, kw = layer_inputs(subject, base)  # [B, pos, d], attention mask of the base run
                e_src, _ = layer_inputs(subject, src)
                base_logits, base_vals = subject.run(base, read=sites)
            m_base = metric_values(contrast.metric, base_logits).double().cpu()
            grads = {s: torch.zeros_like(base_vals[s]) for s in sites}
            for k in range(steps):
                alpha = (k + 0.5) / steps
                h = (e_base + alpha * (e_src - e_base)).detach()
                _, _, g = site_gradients(subject, contrast.metric, base, sites, h0=h, kwargs=kw)
                for s in sites:
                    grads[s] += g[s] / steps
        _check_sites(subject, base_vals, sites, f"{names[0]} input")
        check_finite(m_base, f"{subject.name}, metric ({names[0]} input)")
        _check_sites(subject, grads, sites, f"gradient of the metric, {names[0]} input")
        m_base_all.append(m_base)
        for l, s in enumerate(sites):
            diff = (src_cache[s] - base_vals[s]).double()
            total[l] += _contract(component, per_position, diff * grads[s].double()).cpu()
    n = len(contrast)
    base_v, src_v = torch.cat(m_base_all), torch.cat(m_src_all)  # [n]
    clean_v, corrupt_v = (src_v, base_v) if direction == "denoise" else (base_v, src_v)
    sig, ok = gap_signal(clean_v, corrupt_v, allow_no_signal)
    clean, corrupt = float(clean_v.mean()), float(corrupt_v.mean())
    raw = (float(base_v.mean()) + total / n).float()
    scores = normalise_or_nan(raw.double(), corrupt, clean, ok).float()
    return PatchResult(component, per_position, direction, scores, raw, clean, corrupt,
                       axes_for(component, per_position), method=method,
                       meta={"n_pairs": n, "n_pos": n_pos, "steps": steps if method == "ig" else 1},
                       signal=sig.to_dict(), no_signal=not ok)
