"""Figures: one module per figure family. Built with matplotlib's object API (`Figure`), never pyplot, so
they work under any backend (inline in a notebook, headless in the CLI) and importing this package
changes no matplotlib state. Each `*_figure` function returns a Figure; `save` writes it as PNG (slides)
and SVG (papers).

    heads       layer x head maps of several models (shared limits, layer 0 on top)
    patching    patching results: layer x head, layer x position with token labels
    attribution attribution patching (AtP / IG) against exact patching, with the y = x line
    cka         CKA grids (fixed 0-1 scale), HANS conditions and their difference, layer map boxed
    attention   attention patterns of a teacher head and its matched student head
    hans        HANS accuracy per heuristic x label and per subcase, every model of a study
    compare     restoration bars and the teacher x student head map
    circuit     circuit graphs on the explorer's layer x head grid
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from matplotlib.figure import Figure

FORMATS = ("png", "svg")


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (4, 3),
               layout: Literal["constrained", "compressed", "tight"] | None = None) -> tuple[Figure, Any]:
    """A Figure not registered with pyplot, and its axes (one Axes, or an array for a grid); `layout`:
    matplotlib's layout engine ("constrained" for panels with their own colour bars)."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols)


def save_all(fig: Figure, path: str | Path, dpi: int = 150, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write `fig` as `stem.png`, `stem.svg`, ... (`path`'s suffix, if any, is replaced); creates the folder."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    stem = Path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        p = stem.with_suffix(f".{fmt}") if stem.suffix else stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(p, dpi=dpi, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        out.append(p)
    return out


def save(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write `fig` as PNG and SVG next to each other (`fig.png`, `fig.svg` for `path` = `fig` or `fig.png`);
    returns the PNG's path."""
    return save_all(fig, path, dpi)[0]
