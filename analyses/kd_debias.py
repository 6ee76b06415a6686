"""Does a teacher's debiasing survive knowledge distillation?

For every seed, trains (or reuses from the zoo cache) on the biased NLI data:

  teacher_erm            MiniLM-L6 fine-tuned with cross-entropy
  teacher_debiased       MiniLM-L6 fine-tuned with a debiasing loss (product of experts by default)
  student_nokd           3-layer student (pretrained layers [0, 2, 4]) trained with cross-entropy, no teacher
  kd_erm / kd_debiased   3-layer students distilled from each teacher, initialised from teacher layers [0, 2, 4]
  kd_*_random            the same, randomly initialised
  ikd_*                  iterative (born-again) KD: a second round distilled from the round-1 student
  kd_debiased_aug        KD from the debiased teacher on the training set plus bias-conflicting examples

and reports per condition the mean and 95 % t-interval over seeds (t quantile with n-1 degrees of freedom)
of in-distribution accuracy (and on its bias-conflicting subset), HANS entailment / non-entailment accuracy
(averaged over the three heuristics) and the spurious gap (entailment minus non-entailment accuracy), and
**paired** comparisons between conditions trained on the same seeds (mean per-seed difference with its
t-interval; "excludes 0" when the interval does): the debiasing effect and its cost, debiased teacher vs
its student, KD from ERM vs KD from the debiased teacher, and each proposed fix (augmentation, iterative
KD, teacher-layer initialisation) against plain KD from the debiased teacher.

Writes ``results.json`` (config, versions, per-seed metrics, summary) and ``results.md`` to ``--out``
(default ``runs/kd_debias``). Resumable: each trained model is cached (a finished one is reused) and each
finished run is recorded in ``runs.json`` as soon as it completes.

    python analyses/kd_debias.py                 # full: 5 seeds, default zoo config
    python analyses/kd_debias.py --quick         # smoke configuration (tiny data, 2 seeds, few conditions)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from interp import provenance  # noqa: E402
from interp.train import zoo  # noqa: E402

METRICS = ("id_acc", "id_acc_conflict", "hans_ent", "hans_non_ent", "spurious_gap")
CONDITIONS = ("teacher_erm", "teacher_debiased", "student_nokd", "kd_erm", "kd_debiased",
              "kd_erm_random", "kd_debiased_random", "ikd_erm", "ikd_debiased", "kd_debiased_aug")
# (a, b, what a - b measures), each per seed then averaged with a t-interval over seeds
PAIRED = (("teacher_debiased", "teacher_erm", "debiasing the teacher"),
          ("kd_debiased", "teacher_debiased", "distilling the debiased teacher (student - teacher)"),
          ("kd_debiased", "kd_erm", "KD from the debiased vs from the ERM teacher"),
          ("kd_erm", "teacher_erm", "distilling the ERM teacher (student - teacher)"),
          ("kd_debiased_aug", "kd_debiased", "fix: augmentation with bias-conflicting examples"),
          ("ikd_debiased", "kd_debiased", "fix: iterative KD (round 2 - round 1)"),
          ("kd_debiased", "kd_debiased_random", "fix: teacher-layer initialisation (vs random init)"),
          ("kd_erm", "student_nokd", "KD from ERM vs no KD"))
QUICK_CONDITIONS = ("teacher_erm", "teacher_debiased", "student_nokd", "kd_erm", "kd_debiased", "ikd_debiased",
                    "kd_debiased_aug")
QUICK_CONFIG = replace(zoo.QUICK, n_train=96, n_test=60, hans_per_subcase=2, teacher_epochs=1.0,
                       student_epochs=1.0)


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval over seeds; NaN half-width for a single seed."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if x.size < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - h, m + h


def build_condition(name: str, seed: int, cfg: zoo.ZooConfig, cache_dir, progress=None) -> Path:
    """Train (or reuse) one condition's model for one seed; returns its folder."""
    t_erm = lambda: zoo.build_teacher(cache_dir, "erm", seed, cfg, progress)  # noqa: E731
    t_deb = lambda: zoo.build_teacher(cache_dir, cfg.debias_loss, seed, cfg, progress, name="teacher_debiased")  # noqa: E731
    teachers = {"erm": t_erm, "debiased": t_deb}
    if name == "teacher_erm":
        return t_erm()
    if name == "teacher_debiased":
        return t_deb()
    if name == "student_nokd":
        return zoo.build_nokd_student(cache_dir, seed, cfg, progress=progress)
    if name in ("kd_erm", "kd_debiased"):  # same folders as build_default_pair's students
        which = name.split("_")[1]
        return zoo.build_student(teachers[which](), cache_dir, seed, cfg, name=f"student_{which}", progress=progress)
    if name in ("kd_erm_random", "kd_debiased_random"):
        which = name.split("_")[1]
        return zoo.build_student(teachers[which](), cache_dir, seed, cfg, name=f"student_{which}_random",
                                 init="random", progress=progress)
    if name == "kd_debiased_aug":
        return zoo.build_student(t_deb(), cache_dir, seed, cfg, name="student_debiased_aug", augment=True,
                                 progress=progress)
    if name in ("ikd_erm", "ikd_debiased"):  # born-again: round 2 distils round 1 (the kd_* student)
        which = name.split("_")[1]
        r1 = build_condition(f"kd_{which}", seed, cfg, cache_dir, progress)
        return zoo.build_student(r1, cache_dir, seed, cfg, name=f"student_{which}_round2",
                                 init_from=teachers[which](), progress=progress)
    raise ValueError(f"unknown condition {name!r}; expected one of {CONDITIONS}")


def summarise(runs: dict, conditions, metrics=METRICS) -> dict:
    out = {}
    for c in conditions:
        per_seed = [r["metrics"] for k, r in sorted(runs.items()) if r["condition"] == c]
        out[c] = {"n_seeds": len(per_seed)}
        for m in metrics:
            mean, lo, hi = t_interval([p.get(m, float("nan")) for p in per_seed])
            out[c][m] = {"mean": mean, "ci95": [lo, hi], "values": [p.get(m) for p in per_seed]}
    return out


def paired(runs: dict, pairs=PAIRED, metrics=METRICS) -> list[dict]:
    """Per-seed differences a - b between two conditions trained on the same seeds, with t-intervals."""
    by = {(r["condition"], r["seed"]): r["metrics"] for r in runs.values()}
    out = []
    for a, b, what in pairs:
        seeds = sorted(s for (c, s) in by if c == a and (b, s) in by)
        if not seeds:
            continue
        row = {"a": a, "b": b, "what": what, "seeds": seeds}
        for m in metrics:
            d = [by[(a, s)][m] - by[(b, s)][m] for s in seeds]
            mean, lo, hi = t_interval(d)
            row[m] = {"mean": mean, "ci95": [lo, hi], "values": d,
                      "excludes_0": bool(not math.isnan(lo) and (lo > 0 or hi < 0))}
        out.append(row)
    return out


def paired_table(rows: list[dict], metrics=METRICS) -> str:
    head = ("| comparison (a - b) | seeds | " + " | ".join(metrics) + " |\n|---|---|" + "---|" * len(metrics) + "\n")
    body = ""
    for r in rows:
        cells = []
        for m in metrics:
            c = r[m]
            cells.append(("**" if c["excludes_0"] else "") + _fmt_diff(c) + ("**" if c["excludes_0"] else ""))
        body += f"| {r['what']}: {r['a']} - {r['b']} | {len(r['seeds'])} | " + " | ".join(cells) + " |\n"
    return head + body


def _fmt_diff(cell: dict) -> str:
    m, (lo, hi) = cell["mean"], cell["ci95"]
    if math.isnan(lo):
        return f"{100 * m:+.1f}"
    return f"{100 * m:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _fmt(cell: dict) -> str:
    m, (lo, hi) = cell["mean"], cell["ci95"]
    if math.isnan(m):
        return "n/a"
    if math.isnan(lo):
        return f"{100 * m:.1f}"
    return f"{100 * m:.1f} ± {100 * (hi - lo) / 2:.1f}"


def markdown_table(summary: dict, metrics=METRICS) -> str:
    head = "| condition | seeds | " + " | ".join(metrics) + " |\n|---|---|" + "---|" * len(metrics) + "\n"
    rows = "".join(f"| {c} | {s['n_seeds']} | " + " | ".join(_fmt(s[m]) for m in metrics) + " |\n"
                   for c, s in summary.items())
    return head + rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/kd_debias")
    ap.add_argument("--cache-dir", default=None, help="model cache (default: the zoo cache)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--conditions", nargs="+", default=None)
    ap.add_argument("--quick", action="store_true", help="smoke configuration (tiny data, 2 seeds)")
    ap.add_argument("--base", default=None, help="base model folder instead of MiniLM (tests)")
    ap.add_argument("--merge", nargs="+", default=(), metavar="DIR",
                    help="also read the runs.json of these output folders (runs split over processes)")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: report the recorded runs (conditions or seeds without one are left out)")
    args = ap.parse_args(argv)
    cfg = QUICK_CONFIG if args.quick else zoo.ZooConfig()
    if args.base:
        cfg = replace(cfg, base=str(Path(args.base).resolve()))
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    conditions = tuple(args.conditions or (QUICK_CONDITIONS if args.quick else CONDITIONS))
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        ap.error(f"unknown condition(s) {unknown}; choose from {list(CONDITIONS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_file = out / "runs.json"
    runs = json.loads(runs_file.read_text()) if runs_file.is_file() else {}
    for d in args.merge:
        runs.update({k: v for k, v in json.loads((Path(d) / "runs.json").read_text()).items() if k not in runs})
    if args.merge:
        provenance.atomic_write_json(runs_file, runs)
    t0 = time.perf_counter()
    for seed in seeds:
        for c in conditions:
            key = f"{cfg.digest()}/{c}/seed{seed}"
            if key in runs or args.report_only:
                continue
            t1 = time.perf_counter()
            path = build_condition(c, seed, cfg, args.cache_dir)
            runs[key] = {"condition": c, "seed": seed, "path": str(path), "metrics": zoo.read_metrics(path),
                         "seconds": time.perf_counter() - t1}
            provenance.atomic_write_json(runs_file, runs)
            print(f"[{time.perf_counter() - t0:7.1f}s] {c} seed {seed}: "
                  + " ".join(f"{m}={runs[key]['metrics'].get(m, float('nan')):.3f}" for m in METRICS), flush=True)
    mine = {k: r for k, r in runs.items() if k.startswith(cfg.digest() + "/") and r["seed"] in seeds
            and r["condition"] in conditions}
    summary = summarise(mine, conditions)
    table = markdown_table(summary)
    pairs = paired(mine)
    ptable = paired_table(pairs)
    rec = provenance.record(cfg.key(), seeds=seeds, conditions=list(conditions), summary=summary,
                            paired=pairs, runs=mine, seconds=time.perf_counter() - t0,
                            train_seconds_sum=sum(r.get("seconds", 0.0) for r in mine.values()), metric_notes={
                                "id_acc": "accuracy on held-out NLI with the training bias",
                                "id_acc_conflict": "the same, bias-conflicting examples only",
                                "hans_ent / hans_non_ent": "HANS accuracy on entailment / non-entailment, mean of 3 heuristics",
                                "spurious_gap": "hans_ent - hans_non_ent",
                                "ci95": "Student-t 95% interval over seeds",
                                "paired": "per-seed difference a - b, Student-t 95% interval over seeds"})
    provenance.atomic_write_json(out / "results.json", rec)
    md = (f"# KD debiasing: does debiasing survive distillation?\n\nConfig digest `{cfg.digest()}`, seeds {seeds}. "
          "Values in %, mean ± half-width of the 95% t-interval over seeds.\n\n" + table +
          "\n## Paired comparisons (same seeds)\n\nMean per-seed difference in points [95% t-interval]; **bold**: "
          "the interval excludes 0.\n\n" + ptable)
    provenance.atomic_write_bytes(out / "results.md", md.encode())
    print(table)
    print(ptable)
    print(f"wrote {out / 'results.json'} and {out / 'results.md'} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
