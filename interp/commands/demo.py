"""`interp demo`: the shipped default study (`interp run default`) on the built-in organism.

Builds (or reuses from the cache) the default zoo: MiniLM teachers fine-tuned on biased NLI (ERM and
product-of-experts debiased) and 3-layer students distilled from each; then runs
`interp/studies/default.toml` into `--out`: HANS metrics of the four models, CKA by HANS condition,
head patching and circuits of each model, and for both pairs (each with the other pair's student as
reference) the head map, head-by-head effects and activation / weight patching attribution; ends with
the HTML report, the explorers and a short summary. With the defaults it uses the HANS sample and size
of `analyses/attribute_degradation.py` (seed + 1000, 120 examples per condition), so its pairs'
numbers are the README's. The same as `interp run default --out runs/demo --set sizes.n=N ...`.
"""
from __future__ import annotations

import argparse

from interp.commands._inputs import check_out
from interp.commands._options import add_command, add_common_options, positive_int

HANS_SEED_OFFSET = 1000  # as analyses/attribute_degradation.py: a HANS sample disjoint in seed from the zoo's


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "demo", help="the default study on the built-in teacher/student pairs (= interp run default)",
                    description=__doc__.split("\n", 2)[2],
                    examples=["interp demo", "interp demo --n 60 --out runs/demo_quick   # a faster comparison"])
    p.add_argument("--out", default="runs/demo", help="results folder")
    p.add_argument("--n", type=positive_int, default=120, help="HANS examples per condition in the comparison")
    p.add_argument("--seed", type=int, default=0,
                   help=f"zoo and analysis seed; the HANS data uses seed + {HANS_SEED_OFFSET}")
    p.add_argument("--quiet", action="store_true", help="no progress bars (step lines are still printed)")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.study import find_study, load_study
    from interp.study_run import run_study

    out = check_out(args.out)
    study = load_study(find_study("default"), [f"sizes.n={args.n}", f"study.seed={args.seed}",
                                               f"data.seed={args.seed + HANS_SEED_OFFSET}",
                                               f"study.device={args.device}"])
    run_study(study, out, progress=not args.quiet)
    return 0
