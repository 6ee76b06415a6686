"""HANS accuracy figures of a study's models (per heuristic x label, per subcase)."""
from __future__ import annotations

from matplotlib.figure import Figure

from interp.figures.results import MissingPart, Results, _need


def fig_hans(r: Results, by: str) -> Figure:
    """HANS accuracy of every model of the study, `by` "heuristic" (x label) or "subcase"."""
    from interp.plot.hans import hans_accuracy_figure

    name = "hans_heuristics" if by == "heuristic" else "hans_subcases"
    st = _need(r.study, name, "study", f"{r.root} has no zoo_metrics.json and no study results.json", r)
    models, per_subcase = st
    key = "hans_by_heuristic_label" if by == "heuristic" else "hans_by_subcase"
    if not any(key in m for runs in models.values() for m in runs):
        raise MissingPart(name, "study", f"the study's metrics have no `{key}` (recorded by the zoo since this "
                          "version: retrain or re-evaluate the models)", r.commands["study"])
    n = None if per_subcase is None else int(per_subcase) * (5 if by == "heuristic" else 1)
    return hans_accuracy_figure(models, by=by, n_per_cell=n)
