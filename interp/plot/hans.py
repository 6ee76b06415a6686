"""HANS accuracy bars for every model of a study: per heuristic x gold label (6 cells) and per subcase
(30 cells), one bar per model, with 95% intervals (McCoy et al. 2019 report these two views).

Intervals: over seeds, the Student-t interval of the mean (n - 1 degrees of freedom) when a model has
two or more seeds; for a single seed, the Wilson interval of the accuracy over the cell's `n` examples
when `n` is known; else none (said in the title)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from interp.plot import new_figure

HEURISTICS = ("lexical_overlap", "subsequence", "constituent")
LABELS = ("entailment", "non-entailment")


def wilson(p: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion `p` observed over `n` trials."""
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return float(c - h), float(c + h)


def cell_values(metrics: Mapping, by: str) -> dict[str, float]:
    """One model run's accuracies per cell: `by="heuristic"` -> {"lexical_overlap / entailment": acc, ...}
    from `hans_by_heuristic_label`; `by="subcase"` -> {"ln_subject/object_swap": acc, ...} from
    `hans_by_subcase` (zoo metrics, `interp.data.hans.score_hans`)."""
    if by == "heuristic":
        cells = metrics.get("hans_by_heuristic_label") or {}
        hs = [h for h in HEURISTICS if h in cells] + sorted(set(cells) - set(HEURISTICS))
        return {f"{h} / {lab}": float(cells[h][lab]) for h in hs for lab in LABELS if lab in cells[h]}
    if by == "subcase":
        return {k: float(v) for k, v in sorted((metrics.get("hans_by_subcase") or {}).items())}
    raise ValueError(f"by={by!r}: choose 'heuristic' or 'subcase'.")


def summarise(runs: Sequence[Mapping], by: str, n_per_cell: int | None = None) -> dict[str, tuple[float, float, float]]:
    """{cell: (mean, lo, hi)} over one model's runs (seeds); see the module doc for the interval."""
    from scipy import stats

    per = [cell_values(m, by) for m in runs]
    out = {}
    for cell in per[0] if per else {}:
        v = np.array([p[cell] for p in per if cell in p], dtype=float)
        m = float(v.mean())
        if v.size >= 2:
            h = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
            out[cell] = (m, m - h, m + h)
        elif n_per_cell:
            out[cell] = (m, *wilson(m, n_per_cell))
        else:
            out[cell] = (m, float("nan"), float("nan"))
    return out


def hans_accuracy_figure(models: Mapping[str, Sequence[Mapping]], by: str = "heuristic",
                         n_per_cell: int | None = None, title: str | None = None) -> Figure:
    """Grouped bars: x = HANS cells (`by` "heuristic": heuristic / gold label; "subcase": the 30
    subcases), one bar per model (`models`: {name: [metrics of each seed]}), height = mean accuracy,
    error bars = 95% interval (module doc); `n_per_cell`: examples per cell of one run (Wilson)."""
    summ = {name: summarise(runs, by, n_per_cell) for name, runs in models.items()}
    summ = {k: v for k, v in summ.items() if v}
    if not summ:
        key = "hans_by_heuristic_label" if by == "heuristic" else "hans_by_subcase"
        raise ValueError(f"hans_accuracy_figure: no model has `{key}` in its metrics.")
    cells = list(next(iter(summ.values())))
    k = len(summ)
    width = 0.8 / k
    fig, ax = new_figure(figsize=(2.0 + len(cells) * (0.25 + 0.12 * k), 4.2))
    x = np.arange(len(cells))
    for i, (name, s) in enumerate(summ.items()):
        vals = np.array([s.get(c, (np.nan,) * 3) for c in cells])  # [cell, (mean, lo, hi)]
        err = np.abs(np.stack([vals[:, 0] - vals[:, 1], vals[:, 2] - vals[:, 0]]))
        ax.bar(x - 0.4 + width * (i + 0.5), vals[:, 0], width, yerr=np.nan_to_num(err), capsize=1.5, label=name,
               error_kw={"lw": 0.8})
    ax.set_xticks(x, cells, rotation=90 if by == "subcase" else 30, ha="right" if by != "subcase" else "center",
                  fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    ax.set_ylabel("HANS accuracy")
    ax.set_xlabel("heuristic / gold label" if by == "heuristic" else "subcase (ln/sn/cn: non-entailment)")
    ax.legend(fontsize=7, ncol=min(k, 4), loc="upper center", bbox_to_anchor=(0.5, -0.45 if by == "subcase" else -0.3))
    n_seeds = sorted({len(r) for r in models.values()})
    how = ("Student-t 95% interval over seeds" if n_seeds[0] >= 2 else
           "Wilson 95% interval over examples" if n_per_cell else "no interval (one run, n unknown)")
    ax.set_title((title + "\n" if title else "") + f"HANS accuracy per {by}; bars: {how}; seeds per model: "
                 f"{', '.join(map(str, n_seeds))}", fontsize=9)
    return fig


__all__ = ["hans_accuracy_figure", "summarise", "wilson"]
