"""Figures for patching results: layer x head (or layer x position) heatmaps."""
from __future__ import annotations

from pathlib import Path
from typing import Any

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
    im = ax.imshow(s.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_ylabel("layer")
    ax.set_xlabel(xlabel)
    ax.set_yticks(range(s.shape[0]))
    fig.colorbar(im, ax=ax, label="metric change (patched - base run)" if flagged
                 else "normalised score (0 = corrupt, 1 = clean)")
    title = title or f"{result.method} {result.direction}: {result.component}"
    ax.set_title(f"{title}\nno signal: raw metric changes" if flagged else title, fontsize=9)
    fig.tight_layout()
    return fig
