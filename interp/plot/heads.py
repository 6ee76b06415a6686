"""Layer x head maps of several models side by side, with researchers' conventions: a diverging
red-blue map centred at 0 (red positive), layer 0 on top, heads left to right, the same colour limits
for every model (teacher and student are comparable cell by cell), NaN in grey."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from interp.plot import new_figure, save_all


def head_maps_figure(maps: Mapping[str, np.ndarray], label: str = "score", title: str | None = None,
                     lim: float | None = None) -> Figure:
    """One panel per model ({"teacher": [L, H], "student": [L', H']}), shared limits +-`lim` (default:
    the largest |value| of all maps) and one colour bar."""
    arrays = {k: np.asarray(v, dtype=float) for k, v in maps.items()}
    if not arrays or any(a.ndim != 2 for a in arrays.values()):
        raise ValueError("head_maps_figure takes {name: [layer, head] array}, at least one.")
    finite = np.concatenate([np.abs(a[np.isfinite(a)]) for a in arrays.values()])
    lim = float(lim if lim is not None else (finite.max() if finite.size else 1.0)) or 1.0
    rows = max(a.shape[0] for a in arrays.values())
    cols = sum(a.shape[1] for a in arrays.values())
    fig, axes = new_figure(1, len(arrays), figsize=(1.6 + 0.42 * cols, 1.3 + 0.38 * rows), layout="constrained")
    axes = np.atleast_1d(axes)
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    images = []
    for ax, (name, a) in zip(axes, arrays.items()):
        im = ax.imshow(np.ma.masked_invalid(a), cmap=cmap, norm=norm, origin="upper", aspect="equal")
        images.append(im)
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(a.shape[1]))
        ax.set_yticks(range(a.shape[0]), [f"L{l}" for l in range(a.shape[0])])
        ax.set_xlabel("head")
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("layer")
    fig.colorbar(images[-1], ax=list(axes), label=label, shrink=0.9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_formats(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 150) -> list[Path]:
    """Write `fig` as `stem.png`, `stem.svg`, ... (raster for slides, vector for papers)."""
    return save_all(fig, stem, dpi, formats)


def head_maps(maps: Mapping[str, np.ndarray], stem: str | Path, label: str = "score", title: str | None = None,
              lim: float | None = None) -> list[Path]:
    """`head_maps_figure` saved as PNG and SVG."""
    return save_formats(head_maps_figure(maps, label, title, lim), stem)


__all__ = ["head_maps", "head_maps_figure", "save_formats"]
