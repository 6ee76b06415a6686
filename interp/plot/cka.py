"""CKA heatmaps: teacher layers (rows) x student layers (columns), with the layer map marked."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from interp.plot import new_figure, save


def _panel(ax, grid: np.ndarray, t_labels: Sequence[str], s_labels: Sequence[str],
           layer_map: Mapping[int, int] | None, title: str, diverging: bool = False,
           annotate: bool = True, floor: float | None = None, axes: tuple[str, str] = ("teacher", "student")):
    grid = np.asarray(grid, dtype=float)
    if diverging:
        lim = float(np.nanmax(np.abs(grid))) or 1.0
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower", aspect="auto")
    else:
        im = ax.imshow(grid, cmap="magma", vmin=min(0.0, float(np.nanmin(grid))), vmax=1.0, origin="lower", aspect="auto")
    ax.set_xticks(range(len(s_labels)), s_labels, fontsize=8)
    ax.set_yticks(range(len(t_labels)), t_labels, fontsize=8)
    ax.set_xlabel(f"{axes[1]} layer")
    ax.set_ylabel(f"{axes[0]} layer")
    ax.set_title(title, fontsize=10)
    if annotate and grid.size <= 200:
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                v = grid[i, j]
                dark = (abs(v) < 0.5 * np.nanmax(np.abs(grid))) if diverging else v > 0.6
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if dark else "white")
    if layer_map:
        for s, t in layer_map.items():
            ax.add_patch(Rectangle((s - 0.5, t - 0.5), 1, 1, fill=False, ec="cyan", lw=2))
    if floor is not None and not diverging:
        ax.text(1.0, -0.16, f"biased-CKA floor for unrelated data ~ {floor:.2f}", transform=ax.transAxes,
                ha="right", fontsize=7, color="0.3")
    return im


def plot_cka_grid(
    grid: np.ndarray,
    teacher_labels: Sequence[str],
    student_labels: Sequence[str],
    path: str | Path,
    layer_map: Mapping[int, int] | None = None,
    title: str = "CKA: teacher x student",
    floor: float | None = None,
) -> Path:
    """Save `cka_figure(...)` to `path`."""
    return save(cka_figure(grid, teacher_labels, student_labels, layer_map, title, floor), path, dpi=150)


def cka_figure(
    grid: np.ndarray,
    teacher_labels: Sequence[str],
    student_labels: Sequence[str],
    layer_map: Mapping[int, int] | None = None,
    title: str = "CKA: teacher x student",
    floor: float | None = None,
) -> Figure:
    """Heatmap of `grid [Lt, Ls]`; `layer_map` (student index -> teacher index, grid coordinates) is
    drawn as cyan boxes (e.g. DistilBERT's teacher layers [0, 2, 4, 7, 9, 11] -> student 0..5)."""
    fig, ax = new_figure(figsize=(1.2 + 0.55 * len(student_labels), 1.2 + 0.42 * len(teacher_labels)))
    im = _panel(ax, grid, teacher_labels, student_labels, layer_map, title, floor=floor)
    fig.colorbar(im, ax=ax, fraction=0.05, label="CKA")
    fig.tight_layout()
    return fig


def plot_cka_panels(
    grids: Mapping[str, np.ndarray],
    teacher_labels: Sequence[str],
    student_labels: Sequence[str],
    path: str | Path,
    layer_map: Mapping[int, int] | None = None,
    diverging: Sequence[str] = (),
    row_labels: Mapping[str, Sequence[str]] | None = None,
    col_labels: Mapping[str, Sequence[str]] | None = None,
    axis_models: Mapping[str, tuple[str, str]] | None = None,
    title: str | None = None,
) -> Path:
    """Several grids side by side (e.g. aligned / conflicting / difference, or the reference
    teacher-teacher and student-student grids); names in `diverging` use a symmetric colour map.
    `axis_models` names a panel's (row, column) model, default ("teacher", "student"): e.g.
    {"teacher x teacher": ("teacher", "teacher")}; `title` goes above all panels."""
    k = len(grids)
    fig, axes = new_figure(1, k, figsize=(k * (1.6 + 0.5 * len(student_labels)), 1.4 + 0.42 * len(teacher_labels)))
    axes = np.atleast_1d(axes)
    for ax, (name, g) in zip(axes, grids.items()):
        rl = (row_labels or {}).get(name, teacher_labels)
        cl = (col_labels or {}).get(name, student_labels)
        im = _panel(ax, g, rl, cl, layer_map if name not in (row_labels or {}) else None, name, name in diverging,
                    axes=(axis_models or {}).get(name, ("teacher", "student")))
        fig.colorbar(im, ax=ax, fraction=0.05)
    if title:
        fig.suptitle(title, fontsize=10)
    path = save(fig, path, dpi=150)
    return path
