"""The results of a study run (`interp.study_run`): results.json, tables.md, figures, summary, reports.

Written after every step has run or been read from the cache, so it is cheap and always rewritten.
The summary says what distillation did to the spurious gap (HANS entailment minus non-entailment
accuracy: student minus teacher, with a paired bootstrap interval over examples) and which components
explain the teacher - student gap on HANS non-entailment inputs (shares with bootstrap intervals).
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp.provenance import atomic_write_bytes, atomic_write_json, record

TOP = 3  # components named per attribution view in the summary


def gap_change(teacher_correct: list[int], student_correct: list[int], examples: list[dict], n_boot: int = 1000,
               seed: int = 0) -> dict:
    """Student minus teacher spurious gap (mean over heuristics of entailment accuracy minus mean of
    non-entailment accuracy) with a paired bootstrap 95% interval, resampling within each heuristic x
    label cell (the same examples for both models)."""
    t, s = np.asarray(teacher_correct, dtype=float), np.asarray(student_correct, dtype=float)  # [n] each
    cells: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(examples):
        cells.setdefault((e["heuristic"], e["label"]), []).append(i)
    heur = sorted({h for h, _ in cells if (h, "entailment") in cells and (h, "non-entailment") in cells})
    rng = np.random.default_rng(seed)

    def gaps(draw: bool) -> tuple[np.ndarray, np.ndarray]:
        out_t, out_s = np.zeros(n_boot if draw else 1), np.zeros(n_boot if draw else 1)
        for h in heur:
            for lab, sign in (("entailment", 1.0), ("non-entailment", -1.0)):
                idx = np.asarray(cells[(h, lab)])
                pick = idx[rng.integers(0, len(idx), (n_boot, len(idx)))] if draw else idx[None]  # [B, m]
                out_t += sign * t[pick].mean(1) / len(heur)
                out_s += sign * s[pick].mean(1) / len(heur)
        return out_t, out_s

    gt, gs = gaps(False)
    bt, bs = gaps(True)
    lo, hi = np.quantile(bs - bt, [0.025, 0.975])
    return {"teacher": float(gt[0]), "student": float(gs[0]), "change": float(gs[0] - gt[0]),
            "change_ci95": [float(lo), float(hi)], "n": len(examples), "heuristics": heur}


def _num(x: Any, fmt: str = "+.3f") -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else format(float(x), fmt)


def _ci(ci: Any, fmt: str = "+.3f") -> str:
    return "[n/a]" if not ci or any(v is None or not math.isfinite(float(v)) for v in ci) else \
        f"[{format(ci[0], fmt)}, {format(ci[1], fmt)}]"


def _top(rows: list[dict], unchanged: Sequence[str] = ()) -> list[str]:
    """The TOP components by |share| (or |raw change| without a signal), formatted with intervals."""
    rows = [r for r in rows if r["component"] not in set(unchanged)]
    if not rows:
        return []
    key = "delta" if rows[0]["no_signal"] else "restored"
    rows = sorted(rows, key=lambda r: -abs(np.nan_to_num(r[key])))[:TOP]
    if rows[0]["no_signal"]:
        return [f"{r['component']} raw change {_num(r['delta'])} {_ci(r['delta_ci95'])}" for r in rows]
    return [f"{r['component']} {_num(r['restored'])} {_ci(r['ci95'])}" for r in rows]


def _gap_text(rows: list[dict]) -> str:
    g = rows[0]
    text = f"gap {_num(g['gap_teacher_minus_student'])} {_ci(g['gap_ci95'])}"
    return text + ("" if g["gap_significant"] else " — no clear gap: raw changes, not shares")


def pair_summary(ctx: Any, p: Any) -> list[str]:
    """Markdown lines: the spurious gap before and after distillation, and what explains the student's loss."""
    v = ctx.values
    lines = [f"### {p.name}: {p.teacher} -> {p.student}" + (f" (reference {p.reference})" if p.reference else ""), ""]
    ht, hs = v.get(f"hans.{p.teacher}"), v.get(f"hans.{p.student}")
    if ht and hs:
        g = gap_change(ht["correct"], hs["correct"], ctx.eval_examples, seed=ctx.study.seed)
        v[f"gap_change.{p.name}"] = g
        lines.append(f"- spurious gap (HANS entailment - non-entailment accuracy): teacher {100 * g['teacher']:+.1f} "
                     f"pts, student {100 * g['student']:+.1f} pts; distillation changed it by "
                     f"**{100 * g['change']:+.1f} pts** {_ci([100 * x for x in g['change_ci95']], '+.1f')} "
                     f"(paired bootstrap over {g['n']} examples)")
    res = v.get(f"compare.{p.name}")
    if res:
        a = res["attribution"]
        lines.append(f"- HANS non-entailment accuracy on the comparison sample: teacher "
                     f"{100 * a['teacher_nonent_acc']:.1f}%, student {100 * a['student_nonent_acc']:.1f}%; entailment "
                     f"margin (teacher - student) {_gap_text(a['margin'])}")
        lines.append("- components that explain it (share of the margin gap, 95% CI):")
        w = a["weight_teacher"]
        if "margin" in w:
            top = _top(w["margin"], w.get("unchanged", []))
            lines.append("  - weight patching, teacher parameters into the student: " + (
                "; ".join(top) if top else "every component's parameters equal the teacher's (shares 0)"))
        else:
            lines.append(f"  - weight patching against the teacher: not run ({w['skipped']})")
        lines.append("  - activation patching, teacher activations into the student (total): " + "; ".join(_top(a["margin"])))
        if "margin_direct" in a:
            lines.append("  - same, direct effect: " + "; ".join(_top(a["margin_direct"])))
        r = a.get("reference")
        if r:
            top = _top(r["weight"]["margin"], r["weight"].get("unchanged", []))
            lines.append(f"  - weight patching, reference {r['name']} parameters into the student "
                         f"({_gap_text(r['weight']['margin'])}): " + (
                             "; ".join(top) if top else "every component's parameters equal the reference's"))
    return lines + [""]


def _hans_tables(ctx: Any) -> list[str]:
    models = [m for m in ctx.study.model_names() if f"hans.{m}" in ctx.values]
    if not models:
        return []
    vals = {m: ctx.values[f"hans.{m}"] for m in models}
    lines = ["## HANS accuracy", "", f"{len(ctx.eval_examples)} examples; accuracy in %, per heuristic x gold label; "
             "spurious gap = entailment minus non-entailment accuracy (averaged over heuristics), in points.", "",
             "| model | overall | " + " | ".join(f"{h} {lab[:3]}." for h in _heuristics(vals) for lab in
                                               ("entailment", "non-entailment")) + " | spurious gap |",
             "|---" * (3 + 2 * len(_heuristics(vals))) + "|"]
    for m, v in vals.items():
        cells = v["scores"]["by_heuristic_label"]
        row = [f"{100 * cells[h][lab]:.1f}" if lab in cells.get(h, {}) else "" for h in _heuristics(vals)
               for lab in ("entailment", "non-entailment")]
        gap = v["spurious_gap"]
        lines.append(f"| {m} | {100 * v['scores']['overall']:.1f} | " + " | ".join(row) +
                     f" | {'' if gap is None else f'{100 * gap:+.1f}'} |")
    subcases = sorted({s for v in vals.values() for s in v["scores"]["by_subcase"]})
    lines += ["", "Per subcase (%):", "", "| subcase | " + " | ".join(models) + " |", "|---" * (1 + len(models)) + "|"]
    for sc in subcases:
        lines.append(f"| {sc} | " + " | ".join(f"{100 * vals[m]['scores']['by_subcase'].get(sc, float('nan')):.1f}"
                                               for m in models) + " |")
    return lines + [""]


def _heuristics(vals: dict) -> list[str]:
    return sorted({h for v in vals.values() for h in v["scores"]["by_heuristic_label"]})


def _cka_tables(ctx: Any) -> list[str]:
    lines = []
    for p in ctx.study.pairs:
        c = ctx.values.get(f"cka.{p.name}")
        if not c:
            continue
        lines += [f"## CKA, {p.name} ({'debiased' if c['debiased'] else 'biased'} linear, {c['pool']} pool)", "",
                  f"Bias-aligned = HANS entailment (n = {c['n']['aligned']}), bias-conflicting = non-entailment "
                  f"(n = {c['n']['conflicting']}); teacher layer (row) x student layer (column); figure "
                  f"`cka_{p.name}.png`.", "",
                  "| student layer | best teacher layer (all) | CKA all | aligned | conflicting | aligned - conflicting |",
                  "|---|---|---|---|---|---|"]
        grid, al, co, diff = (np.asarray(c[k], dtype=float) for k in ("grid", "aligned", "conflicting", "difference"))
        for j, sl in enumerate(c["student_layers"]):
            i = int(np.nanargmax(grid[:, j])) if np.isfinite(grid[:, j]).any() else 0
            ci = f" {_ci([c['difference_ci95'][0][i][j], c['difference_ci95'][1][i][j]])}" if "difference_ci95" in c else ""
            lines.append(f"| {sl} | {c['teacher_layers'][i]} | {grid[i, j]:.3f} | {al[i, j]:.3f} | {co[i, j]:.3f} | "
                         f"{diff[i, j]:+.3f}{ci} |")
        lines.append("")
    return lines


def _patching_tables(ctx: Any) -> list[str]:
    lines = []
    for m in ctx.study.model_names():
        pv, cv = ctx.values.get(f"patching.{m}"), ctx.values.get(f"circuits.{m}")
        if not pv and not cv:
            continue
        lines += [f"## {m}: heads and circuit ({ctx.study.options['pairs']}, {ctx.study.sizes['n-pairs']} pairs)", ""]
        if pv:
            sig = pv["signal"]
            lines.append(f"- clean - corrupted gap {_num(sig.get('gap'))} {_ci(sig.get('ci95'))}"
                         + (" — **NO SIGNAL**: raw metric changes" if pv["no_signal"] else ""))
            vals = np.asarray(pv["raw"], dtype=float) - pv["corrupt_metric"] if pv["no_signal"] else \
                np.asarray(pv["scores"], dtype=float)  # [layer, head]
            order = np.argsort(-np.abs(np.nan_to_num(vals)), axis=None)[:5]
            lines.append("- top heads (activation patching, denoising; " + pv["unit"] + "): " + ", ".join(
                f"{l}.{h} {vals[l, h]:+.3f}" for l, h in zip(*np.unravel_index(order, vals.shape))))
        if cv:
            md = cv["metadata"]
            if md.get("no_signal"):
                lines.append(f"- edge circuit: NO SIGNAL (gap not significant), {md.get('n_candidates')} edges scored")
            else:
                lines.append(f"- edge circuit (attribution patching): {len(cv['edges'])} of {md.get('n_candidates')} "
                             f"edges, {len(cv['nodes'])} nodes, faithfulness {_num(md.get('faithfulness'), '.3f')} "
                             f"{_ci(md.get('faithfulness_ci95'), '.3f')}, completeness "
                             f"{_num(md.get('completeness'), '.3f')} {_ci(md.get('completeness_ci95'), '.3f')}")
        lines.append("")
    return lines


def _timings(ctx: Any) -> tuple[list[str], dict]:
    """Seconds per step (when it last ran), from the step records."""
    rows: dict[str, float] = {}
    for folder, prefix in [(ctx.out, "")] + [(ctx.out / p.name, f"{p.name}/") for p in ctx.study.pairs]:
        for f in sorted((folder / "steps").glob("*.json")) if (folder / "steps").is_dir() else []:
            sec = json.loads(f.read_text()).get("seconds")
            if sec is not None:
                rows[prefix + f.stem] = sec
    lines = ["## Step timings", "", "Wall time of each step when it last ran (seconds; cached steps keep their "
             "time).", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in rows.items()]
    return lines + [""], rows


def _figures(ctx: Any) -> list[str]:
    from interp.plot.cka import plot_cka_panels
    from interp.plot.heads import head_maps

    made = []
    for p in ctx.study.pairs:
        c = ctx.values.get(f"cka.{p.name}")
        if c:
            made.append(plot_cka_panels(
                {"aligned": np.asarray(c["aligned"]), "conflicting": np.asarray(c["conflicting"]),
                 "aligned - conflicting": np.asarray(c["difference"])}, c["teacher_layers"], c["student_layers"],
                ctx.out / f"cka_{p.name}.png", diverging=("aligned - conflicting",),
                title=f"CKA by HANS condition, {p.teacher} x {p.student}"))
        pt, ps = ctx.values.get(f"patching.{p.teacher}"), ctx.values.get(f"patching.{p.student}")
        if pt and ps:
            maps = {role: (np.asarray(v["raw"], dtype=float) - v["corrupt_metric"]) if v["no_signal"] else
                    np.asarray(v["scores"], dtype=float) for role, v in ((p.teacher, pt), (p.student, ps))}
            label = "raw metric change" if pt["no_signal"] or ps["no_signal"] else "share of the clean - corrupted gap"
            made += head_maps(maps, ctx.out / f"patching_{p.name}", label=label,
                              title="activation patching, layer x head")
    return [str(m) for m in made]


def write_outputs(ctx: Any) -> dict:
    """results.json, tables.md, summary.md, figures and the HTML reports of a finished study run; prints
    the summary and where to look. Returns results.json's content."""
    from interp.report import report

    study, out = ctx.study, ctx.out
    summary = [f"# {study.name}", ""]
    for p in study.pairs:
        summary += pair_summary(ctx, p)
    timing_lines, timings = _timings(ctx)
    figures = _figures(ctx)
    tables = summary + _hans_tables(ctx) + _cka_tables(ctx) + _patching_tables(ctx)
    tables += ["## Pairs", ""] + [f"- `{p.name}/`: comparison tables (`{p.name}/tables.md`, `{p.name}/report.html`)"
                                  + (", explorer `" + p.name + "/explorer.html`" if study.explorer else "")
                                  for p in study.pairs] + [""] + timing_lines
    atomic_write_bytes(out / "summary.md", ("\n".join(summary) + "\n").encode())
    atomic_write_bytes(out / "tables.md", ("\n".join(tables) + "\n").encode())
    results = {
        "hans": {m: {k: v for k, v in ctx.values[f"hans.{m}"].items() if k != "correct"}
                 for m in study.model_names() if f"hans.{m}" in ctx.values},
        "gap_change": {p.name: ctx.values[f"gap_change.{p.name}"] for p in study.pairs
                       if f"gap_change.{p.name}" in ctx.values},
        "cka": {p.name: ctx.values[f"cka.{p.name}"] for p in study.pairs if f"cka.{p.name}" in ctx.values},
        "patching": {m: ctx.values[f"patching.{m}"] for m in study.model_names() if f"patching.{m}" in ctx.values},
        "circuits": {m: ctx.values[f"circuits.{m}"] for m in study.model_names() if f"circuits.{m}" in ctx.values},
        "pairs": {p.name: f"{p.name}/results.json" for p in study.pairs if (out / p.name / "results.json").exists()},
        "figures": [Path(f).name for f in figures], "timings_s": timings}
    full = {**record(study.to_json(), seed=study.seed, fingerprints={m: ctx.fp(m) for m in ctx.subjects},
                     model_folders=ctx.paths), "results": results}
    atomic_write_json(out / "results.json", full)
    if study.report:
        for p in study.pairs:
            if (out / p.name / "tables.md").exists():
                report(out / p.name)
        path = report(out)
    echo = ctx.echo
    echo("")
    echo("\n".join(summary).strip())
    echo("")
    echo(f"{len(ctx.ran)} steps computed, {len(ctx.cached)} reused from the cache; full tables: {out / 'tables.md'}")
    if study.explorer:
        echo("explorers: " + ", ".join(str(out / p.name / "explorer.html") for p in study.pairs))
    if study.report:
        echo(f"open {path}")
    return full
