"""Attribute the student's lost robustness to heads and layers, on the default organism.

For each teacher/student pair of the default zoo (ERM and debiased), run the full comparison:
layer map (from the student's init), Hungarian head map, head-by-head total/direct effects on the
entailment margin over HANS non-entailment inputs, cross-model patching of every matched head and
layer, and the ranked share of the teacher-student gap each one restores (bootstrap 95% intervals
over examples). Results: runs/attribute_degradation/<pair>/ (results.json, tables.md, figures);
each step is stored as it completes, so a rerun resumes.

    .venv/bin/python analyses/attribute_degradation.py [--n 120] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from interp.comparison_run import run_comparison
    from interp.data.hans_gen import generate_hans
    from interp.train.zoo import build_default_pair

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=120, help="HANS examples per condition")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/attribute_degradation")
    args = ap.parse_args()
    paths = build_default_pair(seed=args.seed)
    hans = generate_hans(100, seed=args.seed + 1000)  # a HANS sample disjoint in seed from the zoo's evaluation set
    for kind in ("erm", "debiased"):
        out = Path(args.out) / kind
        res = run_comparison(paths[f"teacher_{kind}"], paths[f"student_{kind}"], hans, out, n=args.n, seed=args.seed)
        a = res["attribution"]
        print(f"\n== {kind} pair: HANS non-entailment accuracy teacher {a['teacher_nonent_acc']:.3f}, "
              f"student {a['student_nonent_acc']:.3f}; top components by margin gap restored:")
        for r in a["margin"][:8]:
            print(f"  {r['component']:22s} {r['restored']:+.3f}  95% CI [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]")
        print(f"  -> {out}/tables.md")


if __name__ == "__main__":
    main()
