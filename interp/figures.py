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
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from interp.errors import UserError


class MissingPart(UserError):
    """A figure needs a part the results folder lacks; the message names the part and its command."""

    def __init__(self, figure: str, part: str, why: str, command: str):
        self.figure, self.part, self.why, self.command = figure, part, why, command
        super().__init__(f"figure {figure!r} needs the {part!r} part: {why}; compute it with `{command}`")


def _commands(root: Path) -> dict[str, str]:
    r = str(root)
    return {
        "compare": f"interp compare --teacher T --student S --out {r}",
        "explore": f"interp explore {r} --teacher T --student S",
        "cka": f"interp data hans --n-per-subcase 20 --out hans.txt && interp cka --teacher T --student S "
               f"--data hans.txt --conditions hans --debiased --out {r}/cka",
        "patching_positions": f"interp patch --model T --component resid --out {r}/patch_resid",
        "patching_pair": f"interp patch --model T --out {r}/patch_exact && interp patch --model T --method atp "
                         f"--out {r}/patch_atp",
        "study": f"interp demo --out {r}  (or python analyses/kd_debias.py --out {r})",
    }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e}); recompute it or remove it.") from None


class Results:
    """What a results folder holds, read once and lazily (each part None when absent)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root} is not a folder: pass a results folder (e.g. of `interp compare`).")
        self.commands = _commands(self.root)
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def compare_dir(self) -> Path | None:
        """The folder holding `interp compare`'s results.json: RESULTS itself, else its one subfolder with one."""
        def find() -> Path | None:
            for d in [self.root, *sorted(p for p in self.root.iterdir() if p.is_dir())]:
                if (d / "results.json").is_file():
                    raw = _read_json(d / "results.json")
                    if isinstance(raw.get("results"), dict) and "head_map" in raw["results"]:
                        return d
            return None
        return self._once("compare_dir", find)

    @property
    def compare(self) -> Any:  # a dict, or None when absent
        """results.json's `results` (interp.explore.data.read_results)."""
        from interp.explore.data import read_results

        return self._once("compare", lambda: read_results(self.compare_dir) if self.compare_dir else None)

    @property
    def explore(self) -> Any:  # a dict, or None when absent
        """The explorer's data model (interp.explore.data schema): explore/data.json when present, else
        what `gather` reads from the compare results alone (head map, effects, attribution)."""
        def load() -> dict | None:
            for d in [self.root, self.compare_dir]:
                if d is not None and (d / "explore" / "data.json").is_file():
                    return _read_json(d / "explore" / "data.json")
            if self.compare_dir is None:
                return None
            from interp.explore.data import gather

            return gather(results=self.compare_dir)
        return self._once("explore", load)

    def explored(self, key: str) -> Any:
        """One part of the explorer data computed from the models (attention, patching, circuits, cka)."""
        data = self.explore
        return None if data is None else data.get(key)

    @property
    def cka(self) -> Any:  # a dict, or None when absent
        def load() -> dict | None:
            for d in [self.root, self.compare_dir]:
                for p in (d / "cka" / "cka.json", d / "cka.json") if d is not None else ():
                    if p.is_file():
                        return _read_json(p)
            return None
        return self._once("cka", load)

    @property
    def patching(self) -> list[tuple[Path, dict]]:
        """Every `interp patch` result (patching.json) up to two folders deep."""
        def load() -> list[tuple[Path, dict]]:
            files = sorted({*self.root.glob("*/patching.json"), *self.root.glob("*/*/patching.json"),
                            *self.root.glob("patching.json")})
            return [(p, _read_json(p)) for p in files]
        return self._once("patching", load)

    @property
    def study(self) -> tuple[dict[str, list[dict]], int | None] | None:
        """({model: [metrics of each seed]}, examples per HANS subcase or None) of the study, if any."""
        def load():
            for d in [self.root, self.root.parent]:
                if (d / "zoo_metrics.json").is_file():
                    z = _read_json(d / "zoo_metrics.json")
                    return {k: [v] for k, v in z["models"].items()}, z.get("hans_per_subcase")
            if (self.root / "results.json").is_file():
                raw = _read_json(self.root / "results.json")
                if isinstance(raw.get("runs"), dict):
                    models: dict[str, list[dict]] = {}
                    for key in sorted(raw["runs"]):
                        run = raw["runs"][key]
                        models.setdefault(run["condition"], []).append(run["metrics"])
                    order = raw.get("conditions") or list(models)
                    return {c: models[c] for c in order if c in models}, (raw.get("config") or {}).get("hans_per_subcase")
            return None
        return self._once("study", load)


# --- one function per figure: (Results) -> Figure, raising MissingPart -----------------------------
def _need(value: Any, fig: str, part: str, why: str, r: Results, command: str | None = None) -> Any:
    if value is None or value == [] or value == {}:
        raise MissingPart(fig, part, why, r.commands[command or part])
    return value


def _grid(rows: Any) -> np.ndarray:
    """A JSON grid with None (NaN stored as null) -> float array."""
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def _names(r: Results) -> tuple[str, str]:
    data = r.explore or {}
    return ((data.get("teacher") or {}).get("name", "teacher"), (data.get("student") or {}).get("name", "student"))


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


def _circuit(r: Results, role: str) -> Figure:
    from interp.plot.circuit import circuit_part_figure

    c = _need(r.explored("circuits"), f"circuit_{role}", "explore", "circuits are computed by the explorer "
              "from the models", r)
    info = r.explore[role]
    return circuit_part_figure(c[role], info["n_layers"], info["n_heads"], subtitle=f"{role}: {info['name']}")


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


def _hans(r: Results, by: str) -> Figure:
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


FIGURES: dict[str, Callable[[Results], Figure]] = {
    "head_map": fig_head_map,
    "restoration": fig_restoration,
    "weight_patching": fig_weight_patching,
    "attribution_heads": fig_attribution_heads,
    "head_effects": fig_head_effects,
    "patching_heads": fig_patching_heads,
    "attention_matched": fig_attention,
    "circuit_teacher": lambda r: _circuit(r, "teacher"),
    "circuit_student": lambda r: _circuit(r, "student"),
    "cka_grid": fig_cka_grid,
    "cka_conditions": fig_cka_conditions,
    "patching_positions": fig_patching_positions,
    "attribution_vs_exact": fig_attribution_vs_exact,
    "hans_heuristics": lambda r: _hans(r, "heuristic"),
    "hans_subcases": lambda r: _hans(r, "subcase"),
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
