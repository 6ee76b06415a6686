"""Summaries, tables, findings and figures of analyses/vision_kd.py, from its run records (runs.json)."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from interp import metrics, provenance

METRICS = ("accuracy", "worst_group_accuracy", "consistency", "dpd", "eod")
METHODS = {"group": "group reweighting", "dro": "group DRO", "poe": "PoE (attribute-only bias model)"}


def debias_conditions(methods: list[str]) -> list[str]:
    """Table order: teachers, the student alone, then the students of each teacher."""
    return ["teacher_erm", *(f"teacher_{m}" for m in methods), "student_alone", "kd_erm", *(f"kd_{m}" for m in methods)]


def debias_pairs(m: str) -> list[tuple[str, str, str]]:
    """The paired differences asked of one debiasing method: teacher, student (against the ERM teacher's
    student: does the gain survive KD?) and student against the student trained alone."""
    return [(f"teacher_{m}", "teacher_erm", f"{METHODS.get(m, m)} vs ERM teacher"),
            (f"kd_{m}", "kd_erm", f"{METHODS.get(m, m)} teacher's student vs ERM teacher's student"),
            (f"kd_{m}", "student_alone", f"{METHODS.get(m, m)} teacher's student vs student alone")]


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval over seeds; NaN bounds for fewer than two values."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if x.size < 2:
        return m, math.nan, math.nan
    h = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - h, m + h


def _cell(values: list[float]) -> dict[str, Any]:
    mean, lo, hi = t_interval(values)
    return {"mean": mean, "ci95": [lo, hi], "values": values}


def _fmt(c: dict[str, Any], scale: float = 100.0, signed: bool = False) -> str:
    m, (lo, hi) = c["mean"], c["ci95"]
    if math.isnan(m):
        return "n/a"
    s = f"{scale * m:+.1f}" if signed else f"{scale * m:.1f}"
    return s if math.isnan(lo) else f"{s} [{scale * lo:.1f}, {scale * hi:.1f}]"


def _group(runs: dict[str, dict], **match: Any) -> dict[str, dict[int, dict]]:
    """condition -> seed -> metrics, for the records matching `match`."""
    out: dict[str, dict[int, dict]] = {}
    for r in runs.values():
        if all(r[k] == v for k, v in match.items()):
            out.setdefault(r["condition"], {})[r["seed"]] = r["metrics"]
    return out


def _paired(by: dict[str, dict[int, dict]], a: str, b: str) -> dict[str, dict[str, Any]]:
    seeds = sorted(set(by.get(a, {})) & set(by.get(b, {})))
    out = {}
    for k in METRICS:
        c = _cell([by[a][s][k] - by[b][s][k] for s in seeds])
        lo, hi = c["ci95"]
        c["excludes_0"] = bool(not math.isnan(lo) and (lo > 0 or hi < 0))
        c["seeds"] = seeds
        out[k] = c
    return out


def _per_class(by: dict[str, dict[int, dict]], cond: str) -> np.ndarray:
    return np.array([by[cond][s]["per_class_accuracy"] for s in sorted(by.get(cond, {}))])  # [seeds, classes]


def summarise(runs: dict[str, dict]) -> dict[str, Any]:
    """Per (dataset, pair) and condition: every metric's mean and 95% t-interval; paired differences; per
    temperature #SC / #TC (Welch over seeds, p < 0.05)."""
    debias: dict[str, Any] = {}
    for data, pair in sorted({(r["data"], r["pair"]) for r in runs.values() if r["study"] == "debias"}):
        by = _group(runs, study="debias", data=data, pair=pair)
        methods = [m for m in METHODS if f"teacher_{m}" in by] + \
            sorted(c[8:] for c in by if c.startswith("teacher_") and c[8:] not in METHODS and c != "teacher_erm")
        debias[f"{data}/{pair}"] = {
            "methods": methods,
            "conditions": {c: {k: _cell([by[c][s][k] for s in sorted(by[c])]) for k in METRICS}
                           for c in debias_conditions(methods) if c in by},
            "paired": {f"{a} - {b}": {"what": what, "method": m, **_paired(by, a, b)}
                       for m in methods for a, b, what in debias_pairs(m)}}
    by = _group(runs, study="temperature")
    temps = sorted({r["temperature"] for r in runs.values() if r["study"] == "temperature" and r["temperature"]})
    temperature: dict[str, Any] = {}
    for cond in ["teacher_erm", "student_alone"] + [f"kd_T{T:g}" for T in temps]:
        if cond not in by:
            continue
        row: dict[str, Any] = {k: _cell([by[cond][s][k] for s in sorted(by[cond])]) for k in METRICS}
        pc = _per_class(by, cond)
        if cond.startswith("kd_") and min(len(pc), len(by.get("student_alone", {})), len(by["teacher_erm"])) >= 2:
            diff = metrics.count_differing_classes(pc, _per_class(by, "student_alone"), _per_class(by, "teacher_erm"))
            row["n_sc"], row["n_tc"] = diff["vs_student"], diff["vs_teacher"]
        temperature[cond] = row
    if temps and "student_alone" in by:
        temperature["paired"] = {f"kd_T{temps[-1]:g} - kd_T{temps[0]:g}": _paired(by, f"kd_T{temps[-1]:g}",
                                                                                    f"kd_T{temps[0]:g}")}
    return {"debias": debias, "temperature": temperature, "temperatures": temps}


def findings(s: dict[str, Any]) -> list[str]:
    """One sentence per question, read off the intervals (nothing is claimed that an interval does not show)."""
    out = []
    for key, d in s["debias"].items():
        erm = d["conditions"]["teacher_erm"]["worst_group_accuracy"]
        alone = d["conditions"].get("student_alone", {}).get("accuracy")
        out.append(f"{key}: ERM teacher worst-group {_fmt(erm)}, accuracy "
                   f"{_fmt(d['conditions']['teacher_erm']['accuracy'])}; student alone accuracy "
                   f"{_fmt(alone) if alone else 'n/a'}.")
        for m in d.get("methods", []):
            t = d["paired"][f"teacher_{m} - teacher_erm"]["worst_group_accuracy"]
            p = d["paired"][f"kd_{m} - kd_erm"]["worst_group_accuracy"]
            teacher = ("raises" if t["excludes_0"] and t["mean"] > 0 else
                       "lowers" if t["excludes_0"] else "does not measurably change")
            if not (t["excludes_0"] and t["mean"] > 0):
                verdict = "there is no teacher gain to carry"
            elif p["excludes_0"] and p["mean"] > 0:
                verdict = "the gain survives KD"
            elif p["values"] and not any(p["values"]):
                verdict = "none of it survives KD (the same worst-group accuracy in every seed)"
            elif p["excludes_0"]:
                verdict = "KD reverses it"
            else:
                verdict = "its survival through KD is not shown (interval includes 0)"
            out.append(f"{key}, {METHODS.get(m, m)}: {teacher} the teacher's worst-group accuracy "
                       f"({_fmt(t, signed=True)} points); {verdict}: its student minus the ERM teacher's student "
                       f"{_fmt(p, signed=True)} points.")
    t = s["temperature"]
    kd = [c for c in t if c.startswith("kd_T")]
    if kd:
        sc = ", ".join(f"T={c[4:]}: {t[c].get('n_sc', 'n/a')}/{t[c].get('n_tc', 'n/a')}" for c in kd)
        out.append(f"Trifeature, ResNet -> LeNet: classes differing (#SC vs the student alone / #TC vs the teacher, "
                   f"Welch p < 0.05): {sc}.")
        for name, p in t.get("paired", {}).items():
            moved = [f"{k} {_fmt(p[k], signed=True)}" for k in ("dpd", "eod", "accuracy") if p[k]["excludes_0"]]
            out.append(f"Highest vs lowest temperature ({name}): " + ("; ".join(moved) + " points (intervals "
                       "exclude 0)." if moved else "no change in accuracy, DPD or EOD whose interval excludes 0."))
    return out


def markdown(s: dict[str, Any], cfg: Any) -> str:
    md = (f"# Vision KD study\n\nSeeds {list(cfg.seeds)}; {cfg.n_train} training images ({cfg.size}px; Trifeature "
          f"{cfg.tri_size}px), {cfg.epochs:g} epochs (ViTs {cfg.vit_epochs:g}, Trifeature {cfg.tri_epochs:g}), training "
          f"strength {cfg.strength} (ViT pair {cfg.vit_strength}, Trifeature {cfg.tri_strength}); decorrelated test of {cfg.n_test}. Values in points: mean "
          "[95% t-interval over seeds]. DPD / EOD: across attribute values, macro over classes (one vs rest).\n\n"
          "## Findings\n\n" + "".join(f"- {f}\n" for f in findings(s)) + "\n## Debiasing under KD\n\n")
    head = "| model | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS) + "\n"
    for key, d in s["debias"].items():
        md += f"### {key}\n\n" + head
        md += "".join(f"| {c} | " + " | ".join(_fmt(row[k]) for k in METRICS) + " |\n"
                      for c, row in d["conditions"].items())
        md += "".join(f"| {name} | " + " | ".join(("**" if p[k]["excludes_0"] else "") + _fmt(p[k], signed=True)
                                                   + ("**" if p[k]["excludes_0"] else "") for k in METRICS) + " |\n"
                      for name, p in d["paired"].items())
        md += "\n"
    md += "## Temperature on Trifeature (ResNet teacher -> LeNet student)\n\n| model | " + " | ".join(METRICS) + " | #SC | #TC |\n|---|" + \
        "---|" * (len(METRICS) + 2) + "\n"
    for c, row in s["temperature"].items():
        if c != "paired":
            md += f"| {c} | " + " | ".join(_fmt(row[k]) for k in METRICS) + \
                f" | {row.get('n_sc', '')} | {row.get('n_tc', '')} |\n"
    return md


def _save(fig: Any, out: Path, name: str) -> list[str]:
    written = []
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=120, bbox_inches="tight")
        provenance.atomic_write_bytes(out / f"{name}.{ext}", buf.getvalue())
        written.append(f"{name}.{ext}")
    return written


def _err(c: dict[str, Any]) -> tuple[float, float]:
    lo, hi = c["ci95"]
    return (0.0, 0.0) if math.isnan(lo) else (c["mean"] - lo, hi - c["mean"])


def figures(s: dict[str, Any], out: Path) -> list[str]:
    """fig_debias: worst-group accuracy per condition and (dataset, pair); fig_temperature: #SC/#TC, DPD/EOD and
    accuracy against temperature. Error bars: 95% t-intervals over seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    keys = list(s["debias"])
    if keys:
        fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3), squeeze=False, sharey=True)
        for ax, key in zip(axes[0], keys):
            conds = s["debias"][key]["conditions"]
            cells = [conds[c]["worst_group_accuracy"] for c in conds]
            colour = {"teacher": "#2a7", "student": "#bbb", "kd": "#79c"}
            ax.bar(range(len(cells)), [c["mean"] for c in cells], yerr=np.array([_err(c) for c in cells]).T,
                   color=[colour[c.split("_")[0]] if not c.endswith("_erm") else "#777" for c in conds], capsize=3)
            ax.set_xticks(range(len(cells)), list(conds), rotation=45, ha="right", fontsize=7)
            ax.set_title(key, fontsize=9)
        axes[0][0].set_ylabel("worst-group accuracy")
        written += _save(fig, out, "fig_debias")
        plt.close(fig)
    t = s["temperature"]
    kd = [c for c in t if c.startswith("kd_T")]
    if kd:
        temps = [float(c[4:]) for c in kd]
        fig, axes = plt.subplots(1, 3, figsize=(10, 3))
        axes[0].plot(temps, [t[c].get("n_sc", np.nan) for c in kd], "o-", label="#SC (vs student alone)")
        axes[0].plot(temps, [t[c].get("n_tc", np.nan) for c in kd], "s--", label="#TC (vs teacher)")
        axes[0].set_ylabel("classes differing (Welch p<0.05)")
        for ax, ks in ((axes[1], ("dpd", "eod")), (axes[2], ("accuracy", "consistency"))):
            for k in ks:
                ax.errorbar(temps, [t[c][k]["mean"] for c in kd], yerr=np.array([_err(t[c][k]) for c in kd]).T,
                            marker="o", capsize=3, label=k)
        for ax in axes:
            ax.set_xscale("log")
            ax.set_xlabel("temperature")
            ax.legend(fontsize=7)
        written += _save(fig, out, "fig_temperature")
        plt.close(fig)
    return written


def write_report(cfg: Any, runs: dict[str, dict], out: Path) -> dict[str, Any]:
    """results.json (config, summary, findings, runs), results.md and the figures, all written atomically."""
    s = summarise(runs)
    md = markdown(s, cfg)
    figs = figures(s, out)
    from dataclasses import asdict
    rec = provenance.record(asdict(cfg), digest=cfg.digest(), summary=s, findings=findings(s), runs=runs, figures=figs)
    provenance.atomic_write_json(out / "results.json", rec)
    provenance.atomic_write_bytes(out / "results.md", md.encode())
    return rec
