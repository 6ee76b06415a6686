"""Attribution patching against exact activation patching: one point per component, the y = x line
where a perfect linear approximation would put every point (Nanda's AtP plots, Syed et al. 2023)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from interp.plot import new_figure


def attribution_scatter_figure(exact: np.ndarray, approx: np.ndarray, labels: Sequence[str] | None = None,
                               method: str = "atp", unit: str = "score", title: str | None = None,
                               n_labels: int = 5) -> Figure:
    """Scatter of `approx` (an attribution method's estimate) against `exact` (activation patching), the
    same components in the same order (any shape, flattened). The `n_labels` points farthest from y = x
    are labelled with `labels` (e.g. "L1H2"); the title gives Pearson r over the finite points."""
    x = np.asarray(exact, dtype=float).ravel()
    y = np.asarray(approx, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"attribution_scatter_figure: exact has {x.size} components, {method} has {y.size}; "
                         "pass results of the same component kind and contrast.")
    if labels is not None and len(labels) != x.size:
        raise ValueError(f"attribution_scatter_figure: {len(labels)} labels for {x.size} components.")
    ok = np.isfinite(x) & np.isfinite(y)
    fig, ax = new_figure(figsize=(4.2, 4.0))
    ax.scatter(x[ok], y[ok], s=16, color="tab:blue", alpha=0.8, zorder=3)
    lo = float(min(x[ok].min(), y[ok].min())) if ok.any() else 0.0
    hi = float(max(x[ok].max(), y[ok].max())) if ok.any() else 1.0
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", ls="--", lw=1, label="y = x", zorder=2)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    if labels is not None and ok.any():
        miss = np.where(ok, np.abs(y - x), -np.inf)
        for i in np.argsort(-miss)[: min(n_labels, int(ok.sum()))]:
            ax.annotate(labels[i], (x[i], y[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    r = float(np.corrcoef(x[ok], y[ok])[0, 1]) if ok.sum() > 2 and x[ok].std() > 0 and y[ok].std() > 0 else float("nan")
    ax.set_xlabel(f"exact activation patching ({unit})")
    ax.set_ylabel(f"{method} estimate ({unit})")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title((title + "\n" if title else "") + f"{method} vs exact, {int(ok.sum())} components, r = {r:.3f}",
                 fontsize=9)
    return fig


__all__ = ["attribution_scatter_figure"]
