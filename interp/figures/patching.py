"""Patching figures of `interp patch` results: per-position effects, attribution against exact patching."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from interp.figures.results import MissingPart, Results, _grid


def _positions(r: Results) -> tuple[Path, dict]:
    for path, d in r.patching:
        res = d["result"]
        if res["per_position"] and len(res["shape"]) == 2:
            return path, d
    raise MissingPart("patching_positions", "patching", f"{r.root} has no per-position [layer, pos] patching.json",
                      r.commands["patching_positions"])


def fig_patching_positions(r: Results) -> Figure:
    from interp.plot.patching import positions_figure

    path, d = _positions(r)
    res = d["result"]
    values = _grid(res["raw"]) - (res["corrupt_metric"] if res["direction"] == "denoise" else res["clean_metric"]) \
        if res["no_signal"] else _grid(res["scores"])
    tokens = d.get("tokens")
    return positions_figure(values, tokens, label="raw metric change" if res["no_signal"] else "normalised score",
                            title=f"{d.get('model', '')} {res['method']} {res['direction']}: {res['component']} per "
                                  f"position ({path.parent.name}){'' if tokens else '; tokens not recorded'}")


def attribution_pairs(r: Results) -> list[tuple[dict, dict]]:
    """(exact, approximate) patching.json pairs of one model, component and contrast."""
    def key(d: dict) -> tuple:
        c = d.get("config", {})
        res = d["result"]
        return (d.get("fingerprint"), res["component"], res["per_position"], res["direction"], c.get("pairs"),
                c.get("n"), c.get("seed"), tuple(res["shape"]))
    exact = {key(d): d for _, d in r.patching if d["result"]["method"] == "exact"}
    return [(exact[key(d)], d) for _, d in r.patching if d["result"]["method"] != "exact" and key(d) in exact]


def fig_attribution_vs_exact(r: Results) -> Figure:
    from interp.plot.attribution import attribution_scatter_figure

    pairs = attribution_pairs(r)
    if not pairs:
        raise MissingPart("attribution_vs_exact", "patching", f"{r.root} has no exact and attribution patching.json "
                          "of one model, component and contrast", r.commands["patching_pair"])
    ex, ap = pairs[0]
    e, a = ex["result"], ap["result"]
    raw = e["no_signal"] or a["no_signal"]
    xs = _grid(e["raw"]) - e["corrupt_metric"] if raw else _grid(e["scores"])
    ys = _grid(a["raw"]) - a["corrupt_metric"] if raw else _grid(a["scores"])
    labels = None
    if len(e["shape"]) == 2 and e["axes"] == ["layer", "head"]:
        labels = [f"L{l}H{h}" for l in range(e["shape"][0]) for h in range(e["shape"][1])]
    return attribution_scatter_figure(xs, ys, labels, method=a["method"],
                                      unit="raw metric change" if raw else "normalised score",
                                      title=f"{ex.get('model', '')}: {e['component']}, {e['direction']}")
