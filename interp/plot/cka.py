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
    if diverging:  # a difference: red-blue centred at 0, symmetric limits
        lim = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-(lim or 1.0), vmax=lim or 1.0, origin="lower", aspect="auto")
    else:  # CKA on the fixed 0-1 scale, so grids of different data or models compare by colour
        im = ax.imshow(grid, cmap="magma", vmin=0.0, vmax=1.0, origin="lower", aspect="auto")
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
    """Save `cka_panels_figure(...)` to `path` (PNG and SVG)."""
    return save(cka_panels_figure(grids, teacher_labels, student_labels, layer_map, diverging, row_labels,
                                  col_labels, axis_models, title), path, dpi=150)


def cka_panels_figure(
    grids: Mapping[str, np.ndarray],
    teacher_labels: Sequence[str],
    student_labels: Sequence[str],
    layer_map: Mapping[int, int] | None = None,
    diverging: Sequence[str] = (),
    row_labels: Mapping[str, Sequence[str]] | None = None,
    col_labels: Mapping[str, Sequence[str]] | None = None,
    axis_models: Mapping[str, tuple[str, str]] | None = None,
    title: str | None = None,
) -> Figure:
    """Several grids side by side (e.g. aligned / conflicting / difference, or the reference
    teacher-teacher and student-student grids); CKA panels on the fixed 0-1 scale, names in `diverging`
    on a symmetric red-blue map. `axis_models` names a panel's (row, column) model, default ("teacher",
    "student"): e.g. {"teacher x teacher": ("teacher", "teacher")}; `title` goes above all panels."""
    k = len(grids)
    fig, axes = new_figure(1, k, figsize=(k * (2.2 + 0.5 * len(student_labels)), 1.6 + 0.42 * len(teacher_labels)),
                           layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, (name, g) in zip(axes, grids.items()):
        rl = (row_labels or {}).get(name, teacher_labels)
        cl = (col_labels or {}).get(name, student_labels)
        im = _panel(ax, g, rl, cl, layer_map if name not in (row_labels or {}) else None, name, name in diverging,
                    axes=(axis_models or {}).get(name, ("teacher", "student")))
        fig.colorbar(im, ax=ax, fraction=0.05, label="CKA difference" if name in diverging else "CKA")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


DIFFERENCE = "aligned - conflicting"


def cka_conditions_figure(
    aligned: np.ndarray,
    conflicting: np.ndarray,
    difference: np.ndarray,
    teacher_labels: Sequence[str],
    student_labels: Sequence[str],
    layer_map: Mapping[int, int] | None = None,
    title: str | None = None,
) -> Figure:
    """CKA `[teacher layer, student layer]` on bias-aligned and bias-conflicting inputs (fixed 0-1 scale)
    and their difference (`aligned - conflicting`, red-blue centred at 0), the layer map boxed on each:
    where does the student's representation follow the teacher's only when the shortcut works?"""
    grids = {"bias-aligned": aligned, "bias-conflicting": conflicting, DIFFERENCE: difference}
    return cka_panels_figure(grids, teacher_labels, student_labels, layer_map, diverging=(DIFFERENCE,), title=title)
