"""The whole teacher-vs-student study in one call: pair, head map, head-by-head effects, cross-model
patching and the ranked attribution of the student's lost robustness. Writes a results folder:
results.json (with provenance), tables.md, and figures.

Inputs are HANS-format examples. Bias-triggering inputs are HANS non-entailment examples (the
lexical-overlap heuristic says "entailment" and is wrong); controls are HANS entailment examples
(same surface forms, the heuristic is right). Each set is sampled per heuristic, from the seed.
Each step's result is stored under `steps/` as it completes, so an interrupted run resumes.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.compare import (cross_patch, entailment_margin, entailment_rate, fit_site_maps, head_by_head,
                            restoration)
from interp.pair import make_pair, match_heads
from interp.plot.compare import plot_head_map, plot_restoration
from interp.provenance import atomic_write_json, record
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
    path = out_dir / "steps" / f"{name}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved["config"] == config:
            return saved["value"]
    value = fn()
    atomic_write_json(path, {"config": config, "value": value})
    return value


def run_comparison(teacher: Subject | str, student: Subject | str, hans: list[dict], out_dir: str | Path,
                   n: int = 120, seed: int = 0, layer_map: dict[int, int] | None = None,
                   progress: bool = True) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    t = teacher if isinstance(teacher, Subject) else load_subject(teacher, name="teacher")
    s = student if isinstance(student, Subject) else load_subject(student, name="student")
    trig = sample_hans(hans, "non-entailment", n, seed)
    ctrl = sample_hans(hans, "entailment", n, seed + 1)
    match = sample_hans(hans, "non-entailment", n // 2, seed + 2) + sample_hans(hans, "entailment", n // 2, seed + 3)
    trig_ids = {e["id"] for e in trig}
    match = [ex for ex in match if ex["id"] not in trig_ids]
    pair = make_pair(t, s, layer_map, data=match)
    config = {"n": n, "seed": seed, "teacher": t.fingerprint, "student": s.fingerprint,
              "layer_map": {str(k): v for k, v in pair.layer_map.items()}}

    hm_json = _step(out_dir, "head_map", config, lambda: _head_map_json(match_heads(t, s, match, pair.layer_map)))
    pair.head_map = _head_map_from_json(hm_json)
    hbh = _step(out_dir, "head_by_head", config, lambda: head_by_head(pair, trig, ctrl, progress=progress))
    maps = None
    if (t.d_model, t.d_head) != (s.d_model, s.d_head):
        maps = fit_site_maps(pair, match)

    def patched_logits() -> dict:  # stored raw, so the reporting below can change without recomputation
        res = cross_patch(pair, trig, maps=maps, progress=progress)
        return {"teacher": res["teacher"].tolist(), "student": res["student"].tolist(),
                "patched": {k: v.tolist() for k, v in res["patched"].items()}}

    raw = _step(out_dir, "cross_patch", config, patched_logits)
    res = {"teacher": torch.tensor(raw["teacher"]), "student": torch.tensor(raw["student"]),
           "patched": {k: torch.tensor(v) for k, v in raw["patched"].items()}}
    margin, rate = entailment_margin(s.labels), entailment_rate(s.labels)
    attr = {"margin": restoration(res, margin), "entailment_rate": restoration(res, rate),
            "teacher_nonent_acc": float(1 - rate(res["teacher"]).mean()),
            "student_nonent_acc": float(1 - rate(res["student"]).mean()),
            "teacher_margin": float(margin(res["teacher"]).mean()),
            "student_margin": float(margin(res["student"]).mean())}
    results = {"pair": {"layer_map": config["layer_map"], "teacher": t.name, "student": s.name},
               "head_map": hm_json, "head_by_head": hbh, "attribution": attr,
               "ridge_fit_r2": {k: m.r2 for k, m in (maps or {}).items()}}
    atomic_write_json(out_dir / "results.json", {**record(config, seed=seed), "results": results})
    (out_dir / "tables.md").write_text(_tables(results))
    plot_restoration(attr["margin"], out_dir / "restoration_margin.png",
                     "Teacher->student patching on HANS non-entailment: entailment margin")
    plot_head_map(np.array(hm_json["score"]), pair.head_map.matches, t.n_heads, s.n_heads, out_dir / "head_map.png")
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


def _fmt_ci(ci: list[float]) -> str:
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _tables(r: dict) -> str:
    a = r["attribution"]
    lines = ["# Teacher vs student", "",
             f"Layer map (student -> teacher): {r['pair']['layer_map']}", "",
             "| | teacher | student |", "|---|---|---|",
             f"| HANS non-entailment accuracy | {a['teacher_nonent_acc']:.3f} | {a['student_nonent_acc']:.3f} |",
             f"| entailment margin on HANS non-entailment | {a['teacher_margin']:+.3f} | {a['student_margin']:+.3f} |",
             "", "## Degradation attribution (cross-model patching, ranked by share of margin gap restored)", "",
             "| component | restored (margin) | 95% CI | restored (non-ent. accuracy) | 95% CI |", "|---|---|---|---|---|"]
    for name, rows in (("margin", a["margin"]), ("non-entailment accuracy", a["entailment_rate"])):
        if rows and not rows[0]["gap_significant"]:
            ci = rows[0]["gap_ci95"]
            lines.insert(len(lines) - 2, f"**No clear teacher-student gap in {name}** (95% CI of the gap "
                         f"{_fmt_ci(ci)} includes 0): its shares are ratios of noise, not attributions.\n")
    acc = {x["component"]: x for x in a["entailment_rate"]}
    for x in a["margin"]:
        y = acc[x["component"]]
        lines.append(f"| {x['component']} | {x['restored']:+.3f} | {_fmt_ci(x['ci95'])} | {y['restored']:+.3f} | "
                     f"{_fmt_ci(y['ci95'])} |")
    lines += ["", "## Head by head (effects of mean-ablating the head on the margin, HANS non-entailment)", "",
              "Norm ratio: RMS of the student head's write into the residual stream over the teacher head's; "
              "**flagged** when far from 1 (the match score ignores scale).", "",
              "| student head | teacher head | match | norm ratio S/T | pattern sim trig / ctrl | total T | total S | "
              "change | 95% CI | direct T | direct S |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    by_head = {f"{m['student'][0]}.{m['student'][1]}": m for m in r["head_map"]["matches"]}
    for h in r["head_by_head"]:
        m = by_head.get(h["student_head"], {})
        if h["teacher_head"] is None:
            none = "none (dead: constant output)" if m.get("dead") else "none"
            lines.append(f"| {h['student_head']} | {none} | {h['match_score']:.2f} | | | | | | | | |")
            continue
        lines.append(f"| {h['student_head']} | {h['teacher_head']} | {h['match_score']:.2f} | {_fmt_ratio(m)} | "
                     f"{h['pattern_sim_triggering']:.2f} / {h['pattern_sim_control']:.2f} | {h['total_teacher']:+.3f} | "
                     f"{h['total_student']:+.3f} | {h['total_change']:+.3f} | {_fmt_ci(h['total_change_ci95'])} | "
                     f"{h['direct_teacher']:+.3f} | {h['direct_student']:+.3f} |")
    return "\n".join(lines) + "\n"
