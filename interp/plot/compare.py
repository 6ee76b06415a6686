"""Figures for teacher-vs-student comparisons: restoration ranking and the head map."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from interp.plot import new_figure, save


def plot_restoration(rows: list[dict], path: str | Path, title: str, top: int = 15) -> None:
    """Save `restoration_figure(rows, title, top)` to `path` (PNG and SVG)."""
    save(restoration_figure(rows, title, top), path)


def restoration_figure(rows: list[dict], title: str, top: int = 15) -> Figure:
    """Horizontal bars (the `top` first rows, first on top): share of the teacher-student gap each cross-model patch restores, with 95% CIs;
    rows flagged `no_signal` show the raw change (patched - student) instead, titled as such."""
    rows = rows[:top]
    flagged = bool(rows and rows[0].get("no_signal"))
    val_key, ci_key = ("delta", "delta_ci95") if flagged else ("restored", "ci95")
    fig, ax = new_figure(figsize=(7, 0.35 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    vals = np.array([r[val_key] for r in rows])
    lo = np.array([r[ci_key][0] for r in rows])
    hi = np.array([r[ci_key][1] for r in rows])
    ax.barh(y, vals, xerr=np.abs(np.stack([vals - lo, hi - vals])), color="tab:blue", alpha=0.8, capsize=2)
    ax.set_yticks(y, [r["component"] for r in rows], fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    if flagged:
        ax.set_xlabel("metric change, patched - student (raw)")
        ax.set_title(f"{title}\nno signal: raw metric changes", fontsize=10)
    else:
        ax.axvline(1, color="gray", lw=0.8, ls="--")
        ax.set_xlabel("share of teacher-student gap restored (1 = teacher)")
        ax.set_title(title, fontsize=10)
    return fig


def head_labels(n_layers: int, n_heads: int) -> list[str]:
    """"L.H" for every head, layer-major (the order of head-map rows and columns)."""
    return [f"{l}.{h}" for l in range(n_layers) for h in range(n_heads)]


def plot_head_map(score: np.ndarray, matches: dict, n_heads_t: int, n_heads_s: int, path: str | Path,
                  title: str = "head map: teacher x student heads") -> None:
    """Save `head_map_figure(...)` to `path` (PNG and SVG)."""
    save(head_map_figure(score, matches, n_heads_t, n_heads_s, title), path)


def head_map_figure(score: np.ndarray, matches: dict, n_heads_t: int, n_heads_s: int,
                    title: str = "head map: teacher x student heads") -> Figure:
    """`score [teacher head, student head]` (heads flattened layer-major), teacher layer 0 on top, heads
    labelled `layer.head`, Hungarian matches (student (l, h) -> teacher (l, h) or None) circled match score, heads labelled `layer.head`, Hungarian matches circled."""
    n_t, n_s = score.shape[0] // n_heads_t, score.shape[1] // n_heads_s
    fig, ax = new_figure(figsize=(max(5.5, 0.22 * score.shape[1] + 2.5), 0.16 * score.shape[0] + 2))
    im = ax.imshow(score, aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="upper")
    pts = [(sl * n_heads_s + sh, t[0] * n_heads_t + t[1]) for (sl, sh), t in matches.items() if t is not None]
    if pts:  # one artist for all circles (one per match drew slowly)
        ax.plot(*zip(*pts), "o", mfc="none", mec="red", ms=5, ls="none")
    for b in range(1, n_s):
        ax.axvline(b * n_heads_s - 0.5, color="w", lw=0.5)
    for b in range(1, n_t):
        ax.axhline(b * n_heads_t - 0.5, color="w", lw=0.5)
    ax.set_xticks(range(score.shape[1]), head_labels(n_s, n_heads_s), fontsize=6, rotation=90)
    ax.set_yticks(range(score.shape[0]), head_labels(n_t, n_heads_t), fontsize=6)
    ax.set_xlabel("student head (layer.head)")
    ax.set_ylabel("teacher head (layer.head)")
    ax.set_title(f"{title}\nred circles: matched heads", fontsize=9)
    fig.colorbar(im, ax=ax, label="match score")
    return fig
