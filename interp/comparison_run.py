"""The whole teacher-vs-student study in one call: pair, head map, head-by-head effects, cross-model
patching and the ranked attribution of the student's lost robustness. Writes a results folder:
results.json (with provenance), tables.md, and figures.

Inputs are HANS-format examples. Bias-triggering inputs are HANS non-entailment examples (the
lexical-overlap heuristic says "entailment" and is wrong); controls are HANS entailment examples
(same surface forms, the heuristic is right). Each set is sampled per heuristic, from the seed.
Each step's result is stored under `steps/` as it completes, so an interrupted run resumes.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.compare import entailment_margin, entailment_rate, head_by_head, restoration
from interp.cross_patch import cross_patch, fit_site_maps
from interp.pair import HeadMap, Pair, default_layer_map, make_pair, match_heads
from interp.plot.compare import plot_head_map, plot_restoration
from interp.provenance import atomic_write_json, record
from interp.steps import StepCache, digest
from interp.subject import Subject, load_subject


def sample_hans(examples: list[dict], label: str, n: int, seed: int) -> list[dict]:
    """n examples with the given binary label, spread evenly over the heuristics."""
    rng = random.Random(seed)
    by_h: dict[str, list[dict]] = {}
    for ex in examples:
        if ex["label"] == label:
            by_h.setdefault(ex["heuristic"], []).append(ex)
    if not by_h:
        raise ValueError(f"No HANS examples with label {label!r}.")
    out = []
    for i, h in enumerate(sorted(by_h)):
        k = n // len(by_h) + (1 if i < n % len(by_h) else 0)
        out += rng.sample(by_h[h], min(k, len(by_h[h])))
    return out


def _step(out_dir: Path, name: str, config: dict, fn) -> Any:
    """One cached step of the comparison (interp.steps: reused when computed under `config`)."""
    return StepCache(out_dir).run(name, config, fn)


def _load(model: Subject | str | None, name: str | None, device: str = "auto") -> Subject | None:
    if model is None or isinstance(model, Subject):
        return model
    return load_subject(model, name=name, device=device)


def _load_required(model: Subject | str | None, name: str, device: str = "auto") -> Subject:
    subject = _load(model, name, device)
    if subject is None:
        raise ValueError(f"run_comparison needs a {name}: a checkpoint folder or a Subject.")
    return subject


def _logits_json(res: dict) -> dict:  # stored raw, so the reporting can change without recomputation
    out = {"teacher": res["teacher"].tolist(), "student": res["student"].tolist(),
           "patched": {k: v.tolist() for k, v in res["patched"].items()}}
    if "patched_direct" in res:
        out["patched_direct"] = {k: v.tolist() for k, v in res["patched_direct"].items()}
    if "unchanged" in res:
        out["unchanged"] = res["unchanged"]
    return out


def _logits_from_json(raw: dict) -> dict:
    res = {"teacher": torch.tensor(raw["teacher"]), "student": torch.tensor(raw["student"]),
           "patched": {k: torch.tensor(v) for k, v in raw["patched"].items()}}
    if "patched_direct" in raw:
        res["patched_direct"] = {k: torch.tensor(v) for k, v in raw["patched_direct"].items()}
    return res


def _views(res: dict, labels: list[str], by_magnitude: bool = False) -> dict:
    """Shares of the source-minus-student gap per component: margin (total and, where patched,
    direct) and HANS non-entailment error rate. Weight patching ranks by |share|: a parameter swap
    that widens the gap matters as much as one that closes it."""
    margin, rate = entailment_margin(labels), entailment_rate(labels)
    out = {"margin": restoration(res, margin, allow_no_signal=True),
           "entailment_rate": restoration(res, rate, allow_no_signal=True)}
    if "patched_direct" in res:
        out["margin_direct"] = restoration({**res, "patched": res["patched_direct"]}, margin, allow_no_signal=True)
    if by_magnitude:
        for rows in out.values():
            key = "delta" if rows and rows[0]["no_signal"] else "restored"
            rows.sort(key=lambda r: -abs(np.nan_to_num(r[key])))
    return out


def _identity_pair(reference: Subject, student: Subject) -> Pair:
    """Reference and student of one architecture: layer l and head (l, h) correspond to themselves."""
    heads = [(l, h) for l in range(student.n_layers) for h in range(student.n_heads)]
    eye = np.eye(len(heads))
    hm = HeadMap({k: k for k in heads}, {k: 1.0 for k in heads}, eye, eye)
    return Pair(reference, student, {l: l for l in range(student.n_layers)}, hm)


def run_comparison(teacher: Subject | str, student: Subject | str, hans: list[dict], out_dir: str | Path,
                   n: int = 120, seed: int = 0, layer_map: dict[int, int] | None = None,
                   reference: Subject | str | None = None, progress: bool = True, device: str = "auto") -> dict:
    """Teacher vs student (and, with `reference`, a same-architecture reference student vs the student)
    on HANS; see the module doc. Models given as folders load on `device` ("auto": CUDA when available).
    Every attribution is reported by what it answers:

    - activation patching (teacher z into the student), total and direct effect: would the teacher's
      activation at this site fix the student? Credits downstream components that carry an upstream
      change, and teacher values from a residual stream the student never has.
    - weight patching against the teacher (students initialised from teacher layers only): which
      student component's learned parameters, reverted to the teacher's, move the gap?
    - against the reference (weight patching, and activation patching with total and direct effects):
      which component's parameters / activations differ between the two students where it matters?
    """
    from interp.weight_patching import DEFAULT_KINDS, check_swappable, init_correspondence, weight_patch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    t = _load_required(teacher, "teacher", device)
    s = _load_required(student, "student", device)
    ref = _load(reference, None, device)  # named by its folder (e.g. student_erm)
    trig = sample_hans(hans, "non-entailment", n, seed)
    ctrl = sample_hans(hans, "entailment", n, seed + 1)
    match = sample_hans(hans, "non-entailment", n // 2, seed + 2) + sample_hans(hans, "entailment", n // 2, seed + 3)
    trig_ids = {e["id"] for e in trig}
    match = [ex for ex in match if ex["id"] not in trig_ids]
    pair = make_pair(t, s, layer_map, data=match)
    config = {"n": n, "seed": seed, "teacher": t.fingerprint, "student": s.fingerprint,
              "layer_map": {str(k): v for k, v in pair.layer_map.items()},
              # the examples themselves: another HANS file or sample recomputes every step
              "data": digest([[e["id"], e["premise"], e["hypothesis"], e["label"]] for e in trig + ctrl + match])}

    hm_json = _step(out_dir, "head_map", config, lambda: _head_map_json(match_heads(t, s, match, pair.layer_map)))
    pair.head_map = _head_map_from_json(hm_json)
    hbh = _step(out_dir, "head_by_head", config, lambda: head_by_head(pair, trig, ctrl, progress=progress))
    maps = None
    if (t.d_model, t.d_head) != (s.d_model, s.d_head):
        maps = fit_site_maps(pair, match)

    raw = _step(out_dir, "cross_patch", {**config, "direct": True},
                lambda: _logits_json(cross_patch(pair, trig, maps=maps, progress=progress, direct=True)))
    res = _logits_from_json(raw)
    margin, rate = entailment_margin(s.labels), entailment_rate(s.labels)
    attr: dict[str, Any] = {
        **_views(res, s.labels),
        "teacher_nonent_acc": float(1 - rate(res["teacher"]).mean()),
        "student_nonent_acc": float(1 - rate(res["student"]).mean()),
        "teacher_margin": float(margin(res["teacher"]).mean()),
        "student_margin": float(margin(res["student"]).mean())}

    init = init_correspondence(s, t) if default_layer_map(t, s) is not None else None
    try:
        check_swappable(s, t)
        why_not = None if init is not None else \
            "the student does not record an initialisation from teacher layers, so its parameters have no teacher counterparts"
    except ValueError as e:
        why_not = str(e)
    if why_not is None:
        wraw = _step(out_dir, "weight_teacher", {**config, "kinds": list(DEFAULT_KINDS)},
                     lambda: _logits_json(weight_patch(s, t, trig, layer_map=init, progress=progress)))
        attr["weight_teacher"] = {**_views(_logits_from_json(wraw), s.labels, by_magnitude=True),
                                  "unchanged": wraw.get("unchanged", [])}
    else:
        attr["weight_teacher"] = {"skipped": why_not}

    if ref is not None:
        rconf = {**config, "reference": ref.fingerprint}
        check_swappable(s, ref)
        rpair = _identity_pair(ref, s)
        wraw = _step(out_dir, "weight_reference", {**rconf, "kinds": list(DEFAULT_KINDS)},
                     lambda: _logits_json(weight_patch(s, ref, trig, progress=progress)))
        araw = _step(out_dir, "cross_patch_reference", rconf,
                     lambda: _logits_json(cross_patch(rpair, trig, progress=progress, direct=True)))
        ares = _logits_from_json(araw)
        attr["reference"] = {"name": ref.name,
                             "reference_nonent_acc": float(1 - rate(ares["teacher"]).mean()),
                             "reference_margin": float(margin(ares["teacher"]).mean()),
                             "weight": {**_views(_logits_from_json(wraw), s.labels, by_magnitude=True),
                                        "unchanged": wraw.get("unchanged", [])},
                             "activation": _views(ares, s.labels)}

    results = {"pair": {"layer_map": config["layer_map"], "teacher": t.name, "student": s.name,
                        "reference": ref.name if ref is not None else None},
               "head_map": hm_json, "head_by_head": hbh, "attribution": attr,
               "ridge_fit_r2": {k: m.r2 for k, m in (maps or {}).items()}}
    atomic_write_json(out_dir / "results.json",
                      {**record({**config, "reference": ref.fingerprint if ref is not None else None}, seed=seed),
                       "results": results})
    (out_dir / "tables.md").write_text(_tables(results))
    plot_restoration(attr["margin"], out_dir / "restoration_margin.png",
                     f"Activation patching, {t.name} z into {s.name} (HANS non-entailment, n={n}): entailment margin")
    if "margin" in attr["weight_teacher"]:
        plot_restoration(attr["weight_teacher"]["margin"], out_dir / "weight_patching_margin.png",
                         f"Weight patching, {t.name} parameters into {s.name} (HANS non-entailment, n={n}): entailment margin")
    if ref is not None:
        plot_restoration(attr["reference"]["weight"]["margin"], out_dir / "weight_patching_reference_margin.png",
                         f"Weight patching, {ref.name} parameters into {s.name} (HANS non-entailment, n={n}): entailment margin")
    plot_head_map(np.array(hm_json["score"]), pair.head_map.matches, t.n_heads, s.n_heads, out_dir / "head_map.png",
                  title=f"head map: {t.name} x {s.name}, {len(match)} HANS examples")
    return results


def _head_map_json(hm) -> dict:
    return {"matches": hm.to_json(), "score": (0.5 * hm.pattern_sim + 0.5 * hm.z_cka).tolist(),
            "pattern_sim": hm.pattern_sim.tolist(), "z_cka": hm.z_cka.tolist()}


def _head_map_from_json(d: dict):
    from interp.pair import HeadMap

    head = lambda h: (int(h[0]), int(h[1]))  # noqa: E731
    matches = {head(m["student"]): (head(m["teacher"]) if m["teacher"] else None) for m in d["matches"]}
    ratio = {head(m["student"]): m["norm_ratio"] for m in d["matches"] if m.get("norm_ratio") is not None}
    flagged = [head(m["student"]) for m in d["matches"] if m.get("flagged")]
    dead = [head(m["student"]) for m in d["matches"] if m.get("dead")]
    return HeadMap(matches, {head(m["student"]): m["score"] for m in d["matches"]},
                   np.array(d["pattern_sim"]), np.array(d["z_cka"]), ratio, flagged, dead)


def _fmt_ratio(match: dict) -> str:
    """The norm ratio of one head-map entry, with the flag; blank for maps stored without it."""
    ratio = match.get("norm_ratio")
    if ratio is None:
        return ""
    return f"{ratio:.3g}" + (" **flagged**" if match.get("flagged") else "")


def _pct(fraction: float) -> str:
    """An accuracy in percent, the README's unit."""
    return f"{100 * fraction:.1f}%"


def _fmt_ci(ci: list[float]) -> str:
    if not all(np.isfinite(ci)):
        return "n/a"
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _share(row: dict | None) -> str:
    if row is None:
        return "| |"
    if row.get("no_signal") or not np.isfinite(row["restored"]):  # no gap to share: the raw change instead
        return f"no signal (delta {row['delta']:+.3f}) | {_fmt_ci(row['delta_ci95'])}"
    return f"{row['restored']:+.3f} | {_fmt_ci(row['ci95'])}"


def _gap_notes(views: dict, what: str) -> list[str]:
    out = []
    for key, name in (("margin", "entailment margin"), ("entailment_rate", "non-entailment accuracy")):
        rows = views.get(key) or []
        if rows:
            g = rows[0]
            verdict = "" if g["gap_significant"] else \
                " — **no clear gap: shares would be ratios of noise, so raw deltas (patched - student) are shown**"
            out.append(f"- gap in {name} ({what}): {g['gap_teacher_minus_student']:+.3f} {_fmt_ci(g['gap_ci95'])}{verdict}")
    return out


def _view_table(views: dict, question: str, what: str, direct: bool, ranked: str) -> list[str]:
    lines = [question, "", *_gap_notes(views, what), ""]
    head = "| component | share of margin gap (total) | 95% CI |"
    sep = "|---|---|---|"
    if direct:
        head += " direct | 95% CI |"
        sep += "---|---|"
    lines += [head + " share of non-ent. accuracy gap | 95% CI |", sep + "---|---|"]
    acc = {x["component"]: x for x in views["entailment_rate"]}
    dir_rows = {x["component"]: x for x in views.get("margin_direct", [])}
    for x in views["margin"]:
        line = f"| {x['component']} | {_share(x)} |"
        if direct:
            line += f" {_share(dir_rows.get(x['component']))} |"
        lines.append(line + f" {_share(acc.get(x['component']))} |")
    if views.get("unchanged"):
        lines.append(f"\n{len(views['unchanged'])} components have parameters identical to the source's "
                     "(share exactly 0).")
    return lines + ["", f"Ranked by {ranked}.", ""]


def _tables(r: dict) -> str:
    a = r["attribution"]
    lines = ["# Teacher vs student", "",
             f"Layer map (student -> teacher): {r['pair']['layer_map']}", "",
             "| | teacher | student |" + (" reference |" if "reference" in a else ""),
             "|---|---|---|" + ("---|" if "reference" in a else "")]
    ref = a.get("reference")
    lines += [f"| HANS non-entailment accuracy | {_pct(a['teacher_nonent_acc'])} | {_pct(a['student_nonent_acc'])} |" +
              (f" {_pct(ref['reference_nonent_acc'])} |" if ref else ""),
              f"| entailment margin on HANS non-entailment | {a['teacher_margin']:+.3f} | {a['student_margin']:+.3f} |" +
              (f" {ref['reference_margin']:+.3f} |" if ref else ""), "",
              "Shares are (patched - student) / (source - student) on HANS non-entailment inputs: 1 = the "
              "component alone closes the gap, negative = it widens it. Which method answers which question: "
              "activation patching (would the source's *activation* here fix the student? total: later components "
              "react; direct: later attn_out/mlp_out held at the student's values) credits every component whose "
              "activations changed, including undamaged ones downstream of a change; weight patching (would the "
              "source's *parameters* here fix it?) isolates changed parameters.", ""]
    lines += ["## Teacher -> student, activation patching", ""]
    lines += _view_table(a, "Would the teacher's activation at this site fix the student?", "teacher - student",
                         direct=True, ranked="total share of the margin gap")
    lines += ["## Teacher -> student, weight patching", ""]
    w = a["weight_teacher"]
    if "skipped" in w:
        lines += [f"Not run: {w['skipped']}.", ""]
    else:
        lines += _view_table(w, "Which student component's parameters, reverted to the teacher's, move the gap?",
                             "teacher - student", direct=False, ranked="|share| of the margin gap")
    if ref:
        lines += [f"## Reference ({ref['name']}) -> student, weight patching", ""]
        lines += _view_table(ref["weight"], "Which component's parameters differ between the reference and the "
                             "student where it matters?", "reference - student", direct=False,
                             ranked="|share| of the margin gap")
        lines += [f"## Reference ({ref['name']}) -> student, activation patching", ""]
        lines += _view_table(ref["activation"], "Would the reference's activation at this site fix the student?",
                             "reference - student", direct=True, ranked="total share of the margin gap")
    lines += ["## Head by head (effects of mean-ablating the head on the margin, HANS non-entailment)", "",
              "Norm ratio: RMS of the student head's write into the residual stream over the teacher head's; "
              "**flagged** when far from 1 (the match score ignores scale).", "",
              "| student head | teacher head | match | norm ratio S/T | pattern sim trig / ctrl | total T | total S | "
              "change | 95% CI | direct T | direct S |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    by_head = {f"{m['student'][0]}.{m['student'][1]}": m for m in r["head_map"]["matches"]}
    for h in r["head_by_head"]:
        m = by_head.get(h["student_head"], {})
        if h["teacher_head"] is None:
            none = "none (dead: constant output)" if m.get("dead") else "none"
            score = f"{h['match_score']:.2f}" if np.isfinite(h["match_score"]) else "n/a"
            lines.append(f"| {h['student_head']} | {none} | {score} | | | | | | | | |")
            continue
        lines.append(f"| {h['student_head']} | {h['teacher_head']} | {h['match_score']:.2f} | {_fmt_ratio(m)} | "
                     f"{h['pattern_sim_triggering']:.2f} / {h['pattern_sim_control']:.2f} | {h['total_teacher']:+.3f} | "
                     f"{h['total_student']:+.3f} | {h['total_change']:+.3f} | {_fmt_ci(h['total_change_ci95'])} | "
                     f"{h['direct_teacher']:+.3f} | {h['direct_student']:+.3f} |")
    return "\n".join(lines) + "\n"
