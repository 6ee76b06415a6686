"""Figures for patching results: layer x head heatmaps, layer x position with token labels."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from interp.plot import new_figure, save


def heatmap(result: Any, path: str | Path, title: str | None = None) -> Path:
    """Save `heatmap_figure(result, title)` to `path`."""
    return save(heatmap_figure(result, title), path)


def heatmap_figure(result: Any, title: str | None = None) -> Figure:
    """A heatmap of `result.scores` (a PatchResult): [layer, head], [layer, pos], [layer] as a
    column; [layer, head, pos] is shown as layer x head of the largest-magnitude position. A result
    flagged `no_signal` shows its raw metric minus the base run's metric, titled as such."""
    flagged = bool(getattr(result, "no_signal", False))
    base = result.corrupt_metric if result.direction == "denoise" else result.clean_metric
    s = (result.raw - base if flagged else result.scores).detach().float()
    xlabel = result.axes[1] if len(result.axes) > 1 else ""
    if s.dim() == 3:
        idx = s.abs().nan_to_num(0).argmax(-1, keepdim=True)
        s = s.gather(-1, idx)[..., 0]
        xlabel = "head (max |score| over positions)"
    if s.dim() == 1:
        s = s[:, None]
    lim = float(s.abs().nan_to_num(0).max()) or 1.0
    fig, ax = new_figure(figsize=(1.2 + 0.45 * s.shape[1], 1.0 + 0.4 * s.shape[0]))
    im = ax.imshow(s.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, origin="upper", aspect="auto")
    ax.set_ylabel("layer")
    ax.set_xlabel(xlabel)
    ax.set_yticks(range(s.shape[0]))
    fig.colorbar(im, ax=ax, label="metric change (patched - base run)" if flagged
                 else "normalised score (0 = corrupt, 1 = clean)")
    title = title or f"{result.method} {result.direction}: {result.component}"
    ax.set_title(f"{title}\nno signal: raw metric changes" if flagged else title, fontsize=9)
    fig.tight_layout()
    return fig


def positions_figure(scores: np.ndarray, tokens: Sequence[str] | None = None, label: str = "score",
                     title: str | None = None, layer_labels: Sequence[str] | None = None) -> Figure:
    """Per-position patching as ARENA draws it: `scores [layer, pos]` (layer 0 on top), x labelled with
    the tokens (`"3: over"`, position and token of the example they come from), a red-blue map centred
    at 0 with symmetric limits."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"positions_figure takes [layer, pos] scores, got shape {s.shape}.")
    if tokens is not None and len(tokens) != s.shape[1]:
        raise ValueError(f"positions_figure: {len(tokens)} tokens for {s.shape[1]} positions.")
    finite = np.abs(s[np.isfinite(s)])
    lim = float(finite.max()) if finite.size else 1.0
    lim = lim or 1.0
    fig, ax = new_figure(figsize=(2.0 + 0.42 * s.shape[1], 1.4 + 0.36 * s.shape[0]))
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")
    im = ax.imshow(np.ma.masked_invalid(s), cmap=cmap, vmin=-lim, vmax=lim, origin="upper", aspect="auto")
    xt = [f"{i}: {t}" for i, t in enumerate(tokens)] if tokens is not None else [str(i) for i in range(s.shape[1])]
    ax.set_xticks(range(s.shape[1]), xt, rotation=90, fontsize=7)
    ax.set_yticks(range(s.shape[0]), list(layer_labels) if layer_labels else [f"L{l}" for l in range(s.shape[0])],
                  fontsize=7)
    ax.set_xlabel("position: token" if tokens is not None else "position")
    ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax, label=label)
    if title:
        ax.set_title(title, fontsize=9)
    return fig
