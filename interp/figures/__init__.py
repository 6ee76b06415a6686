"""Every figure a results folder allows, drawn from what it holds (no model is run), as PNG and SVG.

A results folder (`RESULTS`) is read for these parts; each figure needs some of them:

  compare    RESULTS/results.json of `interp compare` (head map, head-by-head effects, attribution)
  explore    RESULTS/explore/data.json, written by `interp explore RESULTS --teacher T --student S`
             (attention patterns, layer x head patching of both models, circuits, CKA grid)
  cka        RESULTS/cka/cka.json (or RESULTS/cka.json) of `interp cka ... --conditions hans`
  patching   RESULTS/*/patching.json of `interp patch` (per-position; exact and atp of one contrast)
  study      RESULTS/zoo_metrics.json (`interp demo`) or a study's results.json with per-seed `runs`
             (`analyses/kd_debias.py`): HANS accuracies of every model

The folder's own subfolders holding a compare results.json (e.g. `runs/demo/debiased_pair`) are read
too. `draw_figures` draws what it can and lists, for each skipped figure, the missing part and the
command that computes it; `figure(RESULTS, name)` draws one and raises `MissingPart` naming both.

Figures by family: `heads` (the pair's heads), `cka`, `patching`, `hans`; `results` reads the folder.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from interp.errors import UserError
from interp.figures.cka import cka_layer_map, fig_cka_conditions, fig_cka_grid
from interp.figures.hans import fig_hans
from interp.figures.heads import (
    fig_attention,
    fig_attribution_heads,
    fig_circuit,
    fig_head_effects,
    fig_head_map,
    fig_patching_heads,
    fig_restoration,
    fig_weight_patching,
    matched_attention,
)
from interp.figures.patching import attribution_pairs, fig_attribution_vs_exact, fig_patching_positions
from interp.figures.results import MissingPart, Results

__all__ = ["FIGURES", "Drawn", "MissingPart", "Results", "attribution_pairs", "cka_layer_map", "draw_figures",
           "figure", "matched_attention"]


FIGURES: dict[str, Callable[[Results], Figure]] = {
    "head_map": fig_head_map,
    "restoration": fig_restoration,
    "weight_patching": fig_weight_patching,
    "attribution_heads": fig_attribution_heads,
    "head_effects": fig_head_effects,
    "patching_heads": fig_patching_heads,
    "attention_matched": fig_attention,
    "circuit_teacher": lambda r: fig_circuit(r, "teacher"),
    "circuit_student": lambda r: fig_circuit(r, "student"),
    "cka_grid": fig_cka_grid,
    "cka_conditions": fig_cka_conditions,
    "patching_positions": fig_patching_positions,
    "attribution_vs_exact": fig_attribution_vs_exact,
    "hans_heuristics": lambda r: fig_hans(r, "heuristic"),
    "hans_subcases": lambda r: fig_hans(r, "subcase"),
}


def figure(results: str | Path | Results, name: str) -> Figure:
    """One figure of a results folder (a name of `FIGURES`); `MissingPart` when the folder lacks its part."""
    if name not in FIGURES:
        raise UserError(f"unknown figure {name!r}; choose one of {', '.join(FIGURES)}")
    r = results if isinstance(results, Results) else Results(results)
    return FIGURES[name](r)


@dataclass
class Drawn:
    """What `draw_figures` wrote (figure name -> [PNG, SVG]) and skipped (figure name -> MissingPart)."""

    written: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, MissingPart] = field(default_factory=dict)


def draw_figures(results: str | Path, out: str | Path | None = None, prefix: str = "",
                 names: list[str] | None = None, progress: bool = True) -> Drawn:
    """Draw every figure (or `names`) the folder's contents allow into `out` (default RESULTS/figures) as
    `{prefix}{name}.png` and `.svg`; skipped ones say which part is missing and the command for it."""
    from interp.plot import save_all
    from interp.progress import bar

    r = Results(results)
    out = Path(out) if out is not None else r.root / "figures"
    drawn = Drawn()
    todo = names or list(FIGURES)
    pbar = bar(total=len(todo), desc="figures", unit="fig", disable=not progress)
    for name in todo:
        try:
            fig = figure(r, name)
        except MissingPart as e:
            drawn.skipped[name] = e
        else:
            drawn.written[name] = save_all(fig, out / f"{prefix}{name}")
        pbar.update()
    pbar.close()
    return drawn
