"""KD temperature sweep: class-wise effects and group fairness of distilled students.

Following Mohammadshahi & Ioannou (TMLR 2025), for every temperature T in (1, 2, 4, 10, 20, 40) and seed,
distils a 3-layer student (teacher layers [0, 2, 4] init) from the teacher (``--teacher erm`` by default:
the biased ERM teacher, as in their setup; ``debiased`` or ``both`` also possible), with the zoo's
``alpha`` (weight of the T^2-scaled KL term). Baselines per seed: the teacher and the non-distilled
student (same init, cross-entropy on gold labels).

Reported per temperature (mean and 95 % t-interval over seeds):

- accuracy: in-distribution, HANS entailment / non-entailment, spurious gap;
- class-wise: per-class accuracy on the in-distribution test (3 NLI classes), and the number of classes
  whose accuracy differs (Welch's t-test over seeds, p < 0.05, via ``interp.metrics``) from the
  non-distilled student and from the teacher;
- fairness: DPD and EOD with the **overlap bucket** as the group attribute (hypothesis fully contained in
  the premise or not), "entailment" as the positive prediction, on a cue-neutral test set (bias 0.5, so
  both groups contain every label). EOD (max of the TPR and FPR gaps between groups) isolates the shortcut:
  at equal gold label, how much more often does the model say "entailment" when the words overlap?
  DPD also includes the gold-rate difference between groups, so it is reported but EOD is the one to read.
  (HANS heuristic groups are also recorded per run, as ``dpd_hans_heuristic`` / ``eod_hans_heuristic``.)

Writes ``results.json`` + ``results.md`` to ``--out`` (default ``runs/temperature_sweep``); resumable.

    python analyses/temperature_sweep.py            # full: 5 seeds x 6 temperatures
    python analyses/temperature_sweep.py --quick    # smoke configuration
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from interp import metrics, provenance  # noqa: E402
from interp.train import zoo  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kd_debias import QUICK_CONFIG, _fmt, paired, paired_table, t_interval  # noqa: E402

TEMPERATURES = (1.0, 2.0, 4.0, 10.0, 20.0, 40.0)
METRICS = ("id_acc", "hans_ent", "hans_non_ent", "spurious_gap", "dpd_overlap", "eod_overlap")
CLASSES = ("entailment", "neutral", "contradiction")


def _per_class(m: dict) -> list[float]:
    return [m["id_per_class_acc"][c] for c in CLASSES]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/temperature_sweep")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--temperatures", type=float, nargs="+", default=None)
    ap.add_argument("--teacher", choices=("erm", "debiased", "both"), default="erm")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--base", default=None, help="base model folder instead of MiniLM (tests)")
    args = ap.parse_args(argv)
    cfg = QUICK_CONFIG if args.quick else zoo.ZooConfig()
    if args.base:
        cfg = replace(cfg, base=str(Path(args.base).resolve()))
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    temps = tuple(args.temperatures or ((1.0, 10.0) if args.quick else TEMPERATURES))
    teachers = ("erm", "debiased") if args.teacher == "both" else (args.teacher,)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_file = out / "runs.json"
    runs = json.loads(runs_file.read_text()) if runs_file.is_file() else {}
    t0 = time.perf_counter()

    def record(key, cond, seed, path, **extra):
        if key not in runs:
            runs[key] = {"condition": cond, "seed": seed, "path": str(path), "metrics": zoo.read_metrics(path), **extra}
            provenance.atomic_write_json(runs_file, runs)
            m = runs[key]["metrics"]
            print(f"[{time.perf_counter() - t0:7.1f}s] {cond} seed {seed}: "
                  + " ".join(f"{k}={m.get(k, float('nan')):.3f}" for k in METRICS), flush=True)

    d = cfg.digest()
    for seed in seeds:
        tpaths = {}
        for which in teachers:
            key = f"{d}/teacher_{which}/seed{seed}"
            if which == "erm":
                p = zoo.build_teacher(args.cache_dir, "erm", seed, cfg)
            else:
                p = zoo.build_teacher(args.cache_dir, cfg.debias_loss, seed, cfg, name="teacher_debiased")
            tpaths[which] = p
            record(key, f"teacher_{which}", seed, p)
        key = f"{d}/student_nokd/seed{seed}"
        if key not in runs:
            record(key, "student_nokd", seed, zoo.build_nokd_student(args.cache_dir, seed, cfg))
        for which in teachers:
            for T in temps:
                key = f"{d}/kd_{which}_T{T:g}/seed{seed}"
                if key in runs:
                    continue
                name = f"student_{which}" if T == cfg.kd_temperature else f"student_{which}_T{T:g}"
                p = zoo.build_student(tpaths[which], args.cache_dir, seed, cfg, name=name, temperature=T)
                record(key, f"kd_{which}_T{T:g}", seed, p, temperature=T, teacher=which)

    mine = {k: r for k, r in runs.items() if k.startswith(d + "/") and r["seed"] in seeds}

    def by_cond(c):
        return [r["metrics"] for _, r in sorted(mine.items(), key=lambda kv: kv[1]["seed"]) if r["condition"] == c]

    nokd = np.array([_per_class(m) for m in by_cond("student_nokd")])
    summary = {}
    rows = [f"teacher_{w}" for w in teachers] + ["student_nokd"] + [f"kd_{w}_T{T:g}" for w in teachers for T in temps]
    for c in rows:
        ms = by_cond(c)
        s = {"n_seeds": len(ms)}
        for k in METRICS:
            mean, lo, hi = t_interval([m.get(k, float("nan")) for m in ms])
            s[k] = {"mean": mean, "ci95": [lo, hi], "values": [m.get(k) for m in ms]}
        pc = np.array([_per_class(m) for m in ms])
        s["per_class_acc_mean"] = dict(zip(CLASSES, pc.mean(0).tolist()))
        if c.startswith("kd_") and len(ms) >= 2 and len(nokd) >= 2:
            which = c.split("_")[1]
            teach = np.array([_per_class(m) for m in by_cond(f"teacher_{which}")])
            diff = metrics.count_differing_classes(pc, nokd, teach)
            s["classes_differing_vs_nokd"] = diff["vs_student"]
            s["classes_differing_vs_teacher"] = diff["vs_teacher"]
            for who, key in (("nokd", "vs_student"), ("teacher", "vs_teacher")):
                det = diff["detail"][key]
                s[f"welch_p_vs_{who}"] = dict(zip(CLASSES, np.asarray(det["p"]).tolist()))
                s[f"class_diff_vs_{who}"] = {c: {"diff": float(det["diff"][i]), "ci95": det["diff_ci95"][i].tolist(),
                                                 "p": float(det["p"][i]), "near_constant": bool(det["near_constant"][i])}
                                             for i, c in enumerate(CLASSES)}
        summary[c] = s

    # paired over the same seeds: each temperature against the lowest, and against the non-distilled student
    pairs = [(f"kd_{w}_T{T:g}", f"kd_{w}_T{temps[0]:g}", f"temperature {T:g} vs {temps[0]:g}") for w in teachers
             for T in temps[1:]]
    pairs += [(f"kd_{w}_T{T:g}", "student_nokd", f"KD at T = {T:g} vs no KD") for w in teachers for T in temps]
    paired_rows = paired(mine, pairs, METRICS)
    cols = list(METRICS) + ["#cls≠nokd", "#cls≠teacher"]
    md = (f"# KD temperature sweep\n\nConfig digest `{d}`, seeds {seeds}, alpha={cfg.kd_alpha} (weight of the KL term). Values in %, "
          "mean ± half-width of the 95% t-interval over seeds. DPD/EOD: group = overlap bucket, positive = "
          "entailment, cue-neutral test. #cls: classes (of 3) whose per-class accuracy differs, Welch p<0.05 over "
          "seeds.\n\n")
    md += "| model | seeds | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols) + "\n"
    for c, s in summary.items():
        extra = [str(s.get("classes_differing_vs_nokd", "")), str(s.get("classes_differing_vs_teacher", ""))]
        md += f"| {c} | {s['n_seeds']} | " + " | ".join([_fmt(s[k]) for k in METRICS] + extra) + " |\n"
    md += ("\n## Per-class accuracy change vs the non-distilled student\n\nPoints, mean difference with its Welch 95% "
           "interval, then Welch's p. *near-constant*: accuracy moves by less than half a point across seeds on both "
           "sides, so the test's p-value would be extreme and meaningless; read the difference.\n\n"
           "| model | " + " | ".join(CLASSES) + " |\n|---|" + "---|" * len(CLASSES) + "\n")
    for c, s in summary.items():
        if "class_diff_vs_nokd" not in s:
            continue
        cells = []
        for k in CLASSES:
            d = s["class_diff_vs_nokd"][k]
            lo, hi = d["ci95"]
            tail = "near-constant" if d["near_constant"] else f"p = {d['p']:.2g}"
            cells.append(f"{100 * d['diff']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}], {tail}")
        md += f"| {c} | " + " | ".join(cells) + " |\n"
    md += ("\n## Paired comparisons\n\nPoints, mean per-seed difference [95% t-interval] over the same seeds; "
           "**bold**: the interval excludes 0.\n\n" + paired_table(paired_rows, METRICS))
    rec = provenance.record(cfg.key(), seeds=seeds, temperatures=list(temps), teachers=list(teachers),
                            summary=summary, runs=mine, paired=paired_rows,
                            fairness_group="overlap bucket (all hypothesis words in premise) on the bias-0.5 test; "
                                           "positive prediction = entailment")
    provenance.atomic_write_json(out / "results.json", rec)
    provenance.atomic_write_bytes(out / "results.md", md.encode())
    print(md)
    print(f"wrote {out / 'results.json'} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
