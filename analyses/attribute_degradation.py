"""Attribute the student's lost robustness to heads and layers, on the default organism.

For each teacher/student pair of the default zoo (ERM and debiased), run the full comparison:
layer map (from the student's init), Hungarian head map, head-by-head total/direct effects on the
entailment margin over HANS non-entailment inputs, and three attributions, each with the question
it answers: activation patching of every matched head and layer (teacher z into the student; total
and direct effects), weight patching against the teacher (each student component's parameters
reverted to the teacher's, i.e. to their initialisation), and weight and activation patching
against a reference student of the same architecture: the other pair's student (KD from ERM vs KD
from the debiased teacher). Shares of a gap come with bootstrap 95% intervals over examples; a gap
whose interval includes 0 is reported as "no signal" with raw deltas instead of shares.
Results: runs/attribute_degradation/<pair>/ (results.json, tables.md, figures); each step is stored
as it completes, so a rerun resumes.

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
    other = {"erm": "debiased", "debiased": "erm"}
    for kind in ("erm", "debiased"):
        out = Path(args.out) / kind
        res = run_comparison(paths[f"teacher_{kind}"], paths[f"student_{kind}"], hans, out, n=args.n, seed=args.seed,
                             reference=paths[f"student_{other[kind]}"])
        a = res["attribution"]
        print(f"\n== {kind} pair: HANS non-entailment accuracy teacher {a['teacher_nonent_acc']:.3f}, "
              f"student {a['student_nonent_acc']:.3f}, reference student_{other[kind]} "
              f"{a['reference']['reference_nonent_acc']:.3f}")
        for title, rows in (("activation patching, teacher -> student (total)", a["margin"]),
                            ("weight patching, teacher -> student", a["weight_teacher"].get("margin", [])),
                            (f"weight patching, student_{other[kind]} -> student", a["reference"]["weight"]["margin"])):
            print(f"  {title}: " + _gap_line(rows))
            for r in rows[:6]:
                print("    " + _row_line(r))
        print(f"  -> {out}/tables.md")


def _gap_line(rows: list[dict]) -> str:
    if not rows:
        return "not run"
    g = rows[0]
    verdict = "" if g["gap_significant"] else " -> no signal: raw deltas, not shares"
    return f"gap {g['gap_teacher_minus_student']:+.3f} [{g['gap_ci95'][0]:+.3f}, {g['gap_ci95'][1]:+.3f}]{verdict}"


def _row_line(r: dict) -> str:
    if r["no_signal"]:
        return f"{r['component']:22s} delta {r['delta']:+.3f}  95% CI [{r['delta_ci95'][0]:+.3f}, {r['delta_ci95'][1]:+.3f}]"
    return f"{r['component']:22s} share {r['restored']:+.3f}  95% CI [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]"


if __name__ == "__main__":
    main()
