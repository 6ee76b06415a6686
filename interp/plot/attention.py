"""Attention patterns of matched heads side by side: a teacher head and the student head the head map
matched to it, on one example, tokens on both axes (query rows, key columns), the premise/hypothesis
boundary (the first [SEP]) marked by lines."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from interp.plot import new_figure


def attention_pair_figure(teacher: np.ndarray, student: np.ndarray, tokens: Sequence[str], sep: int | None = None,
                          names: tuple[str, str] = ("teacher", "student"), title: str | None = None) -> Figure:
    """Two panels, `teacher [q_pos, k_pos]` and `student [q_pos, k_pos]` attention probabilities on one
    fixed 0-1 scale (comparable cell by cell); `names` label the panels (e.g. "teacher L3H1"); `sep` is
    the index of the token ending the premise: lines are drawn after it on both axes."""
    pats = [np.asarray(teacher, dtype=float), np.asarray(student, dtype=float)]
    n = len(tokens)
    for name, p in zip(names, pats):
        if p.shape != (n, n):
            raise ValueError(f"attention_pair_figure: {name} pattern has shape {p.shape}, expected "
                             f"[q_pos, k_pos] = ({n}, {n}) for {n} tokens.")
    fig, axes = new_figure(1, 2, figsize=(2.4 + 0.5 * n, 1.2 + 0.26 * n), layout="constrained")
    im = None
    for ax, name, p in zip(axes, names, pats):
        im = ax.imshow(p, cmap="Blues", vmin=0.0, vmax=1.0, origin="upper", aspect="equal")
        ax.set_xticks(range(n), list(tokens), rotation=90, fontsize=7)
        ax.set_yticks(range(n), list(tokens), fontsize=7)
        ax.set_xlabel("key token")
        ax.set_title(name, fontsize=10)
        if sep is not None and 0 <= sep < n - 1:
            ax.axhline(sep + 0.5, color="tab:orange", lw=1.2)
            ax.axvline(sep + 0.5, color="tab:orange", lw=1.2)
    axes[0].set_ylabel("query token")
    assert im is not None  # two panels drawn
    fig.colorbar(im, ax=list(axes), label="attention probability", shrink=0.8)
    fig.suptitle((title + "\n" if title else "") + "orange lines: premise | hypothesis boundary", fontsize=9)
    return fig


__all__ = ["attention_pair_figure"]
