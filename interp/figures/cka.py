"""CKA figures: the teacher x student layer grid and the grids by HANS condition (`interp cka`)."""
from __future__ import annotations

from matplotlib.figure import Figure

from interp.figures.results import MissingPart, Results, _grid, _need


def fig_cka_conditions(r: Results) -> Figure:
    from interp.plot.cka import cka_conditions_figure

    c = _need(r.cka, "cka_conditions", "cka", f"{r.root} has no cka/cka.json", r)
    if "conditions" not in c:
        raise MissingPart("cka_conditions", "cka", "cka.json has no HANS conditions (run with --conditions hans)",
                          r.commands["cka"])
    g = c["conditions"]
    return cka_conditions_figure(_grid(g["aligned"]), _grid(g["conflicting"]),
                                 _grid(c["difference_aligned_minus_conflicting"]), c["teacher_layers"],
                                 c["student_layers"], cka_layer_map(c),
                                 title=f"{'debiased ' if c.get('debiased') else ''}{c.get('kernel', 'linear')} CKA "
                                       f"by HANS condition (aligned = entailment), {c.get('site')}, {c.get('pool')} pool")


def cka_layer_map(c: dict) -> dict[int, int]:
    """cka.json's layer map in grid coordinates (student column -> teacher row), the embedding included."""
    t_idx = {lab: i for i, lab in enumerate(c["teacher_layers"])}
    s_idx = {lab: i for i, lab in enumerate(c["student_layers"])}
    pairs = [("emb", "emb")] + [(f"L{t}", f"L{j}") for j, t in enumerate(c.get("layer_map") or [])]
    return {s_idx[b]: t_idx[a] for a, b in pairs if a in t_idx and b in s_idx}


def fig_cka_grid(r: Results) -> Figure:
    from interp.plot.cka import cka_figure

    c = r.cka
    if c is not None:
        return cka_figure(_grid(c["grid"]), c["teacher_layers"], c["student_layers"], cka_layer_map(c),
                          title=f"{'debiased ' if c.get('debiased') else ''}CKA, n={c.get('n')}",
                          floor=None if c.get("debiased") else c.get("floor_biased"))
    k = _need(r.explored("cka"), "cka_grid", "cka", f"{r.root} has no cka/cka.json and no explorer data", r)
    g = _grid(k["grid"])  # [teacher layer, student layer]
    lm = {int(s): int(t) for s, t in (r.explore.get("layer_map") or {}).items()}
    return cka_figure(g, [f"L{i}" for i in range(g.shape[0])], [f"L{j}" for j in range(g.shape[1])], lm,
                      title=f"{'debiased ' if k.get('debiased') else ''}CKA, {k.get('site')}, n={k.get('n')}")
