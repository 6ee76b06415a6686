"""Head-level figures of a teacher/student pair: head map, cross-model and weight patching, attribution
of the gap to student heads, head effects, layer x head patching, matched attention patterns, circuits."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from interp.figures.results import MissingPart, Results, _grid, _names, _need


def fig_head_map(r: Results) -> Figure:
    from interp.plot.compare import head_map_figure

    res = _need(r.compare, "head_map", "compare", f"{r.root} has no results.json of `interp compare`", r)
    data = r.explore
    matches = {tuple(m["student"]): (tuple(m["teacher"]) if m["teacher"] else None) for m in data["head_map"]}
    t, s = _names(r)
    return head_map_figure(np.array(res["head_map"]["score"], dtype=float), matches, data["teacher"]["n_heads"],
                           data["student"]["n_heads"], title=f"head map: {t} x {s}")


def fig_restoration(r: Results) -> Figure:
    from interp.plot.compare import restoration_figure

    res = _need(r.compare, "restoration", "compare", f"{r.root} has no results.json of `interp compare`", r)
    t, s = _names(r)
    return restoration_figure(res["attribution"]["margin"], f"activation patching, {t} z into {s}: entailment margin")


def fig_weight_patching(r: Results) -> Figure:
    from interp.plot.compare import restoration_figure

    res = _need(r.compare, "weight_patching", "compare", f"{r.root} has no results.json of `interp compare`", r)
    w = res["attribution"].get("weight_teacher", {})
    if "margin" not in w:
        raise MissingPart("weight_patching", "compare", f"weight patching was not run ({w.get('skipped')})",
                          r.commands["compare"])
    t, s = _names(r)
    return restoration_figure(w["margin"], f"weight patching, {t} parameters into {s}: entailment margin")


def _student_grid(values: dict[str, float | None], n_layers: int, n_heads: int) -> np.ndarray:
    g = np.full((n_layers, n_heads), np.nan)  # [layer, head]
    for key, v in values.items():
        l, h = (int(x) for x in key.split("."))
        g[l, h] = np.nan if v is None else v
    return g


def fig_attribution_heads(r: Results) -> Figure:
    """Per student head, the share of the teacher - student margin gap each attribution gives it."""
    from interp.plot.heads import head_maps_figure

    _need(r.compare, "attribution_heads", "compare", f"{r.root} has no results.json of `interp compare`", r)
    data = r.explore
    att, st = data["attribution"], data["student"]
    key = "delta" if any(v.get("no_signal") for v in att["cross"].values()) else "share"
    maps = {"act. patching, total": att["cross"], "act. patching, direct": att["cross_direct"],
            "weight patching": att.get("weight")}
    maps = {k: _student_grid({h: v[key] for h, v in m.items()}, st["n_layers"], st["n_heads"])
            for k, m in maps.items() if m}
    label = "raw margin change (no signal)" if key == "delta" else "share of the teacher - student gap"
    return head_maps_figure(maps, label=label, title=f"attribution of the gap to {st['name']}'s heads")


def fig_head_effects(r: Results) -> Figure:
    """Total effect of mean-ablating each head on the margin: teacher heads (matched ones) and student heads."""
    from interp.plot.heads import head_maps_figure

    _need(r.compare, "head_effects", "compare", f"{r.root} has no results.json of `interp compare`", r)
    data = r.explore
    t, s = data["teacher"], data["student"]
    tg = np.full((t["n_layers"], t["n_heads"]), np.nan)  # [layer, head], unmatched teacher heads NaN
    sg = np.full((s["n_layers"], s["n_heads"]), np.nan)
    for row in data["head_by_head"]:
        sl, sh = (int(x) for x in row["student_head"].split("."))
        sg[sl, sh] = np.nan if row.get("total_student") is None else row["total_student"]
        if row.get("teacher_head"):
            tl, th = (int(x) for x in row["teacher_head"].split("."))
            tg[tl, th] = np.nan if row.get("total_teacher") is None else row["total_teacher"]
    return head_maps_figure({t["name"]: tg, s["name"]: sg}, label="total effect on the entailment margin",
                            title="head-by-head: effect of mean-ablating each head (grey: unmatched)")


def fig_patching_heads(r: Results) -> Figure:
    from interp.plot.heads import head_maps_figure

    p = _need(r.explored("patching"), "patching_heads", "explore",
              "the layer x head patching maps are computed by the explorer from the models", r)
    names = _names(r)
    maps = {name: _grid(p[role]["scores"]) for name, role in zip(names, ("teacher", "student"))}
    label = "raw metric change" if any(p[x]["no_signal"] for x in ("teacher", "student")) else \
        "share of the clean - corrupted gap"
    return head_maps_figure(maps, label=label, title="activation patching (denoising), layer x head")


def _attention(data: dict, role: str, i: int) -> np.ndarray:
    from interp.explore.data import decode_attention

    info, n = data[role], len(data["examples"][i]["tokens"])
    return decode_attention(data["attention"][role][i], info["n_layers"], info["n_heads"], n)  # [L, H, q, k]


def matched_attention(data: dict) -> dict:
    """The best-matched (student head, teacher head) pair and the example where the models' metric
    differs most: {"example", "student_head", "teacher_head", "teacher" [q, k], "student" [q, k]}."""
    pairs = [m for m in data["head_map"] if m["teacher"] is not None and m.get("score") is not None]
    if not pairs:
        raise ValueError("the head map matches no student head to a teacher head")
    best = max(pairs, key=lambda m: m["score"])
    exs = data["examples"]
    i = max(range(len(exs)), key=lambda j: abs(exs[j]["metric"]["teacher"] - exs[j]["metric"]["student"]))
    (tl, th), (sl, sh) = best["teacher"], best["student"]
    return {"example": i, "teacher_head": (tl, th), "student_head": (sl, sh), "score": best["score"],
            "teacher": _attention(data, "teacher", i)[tl, th], "student": _attention(data, "student", i)[sl, sh]}


def fig_attention(r: Results) -> Figure:
    from interp.plot.attention import attention_pair_figure

    data = r.explore
    _need(r.explored("attention"), "attention", "explore", "attention patterns are computed by the explorer "
          "from the models", r)
    m = matched_attention(data)
    ex = data["examples"][m["example"]]
    (tl, th), (sl, sh) = m["teacher_head"], m["student_head"]
    names = _names(r)
    return attention_pair_figure(m["teacher"], m["student"], ex["tokens"], ex.get("sep"),
                                 (f"{names[0]} L{tl}H{th}", f"{names[1]} L{sl}H{sh}"),
                                 title=f"matched heads (score {m['score']:.2f}), HANS {ex.get('subcase')}")


def fig_circuit(r: Results, role: str) -> Figure:
    """The explorer's circuit of one model (`role`: "teacher" or "student")."""
    from interp.plot.circuit import circuit_part_figure

    c = _need(r.explored("circuits"), f"circuit_{role}", "explore", "circuits are computed by the explorer "
              "from the models", r)
    info = r.explore[role]
    return circuit_part_figure(c[role], info["n_layers"], info["n_heads"], subtitle=f"{role}: {info['name']}")
