"""Figures: one module per analysis. Built with matplotlib's object API (`Figure`), never pyplot, so they
work under any backend (inline in a notebook, headless in the CLI) and importing this package changes
no matplotlib state."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (4, 3)) -> tuple[Figure, Any]:
    """A Figure not registered with pyplot, and its axes (one Axes, or an array for a grid)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Lay out and write a figure (creating the folder)."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
