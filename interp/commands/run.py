"""`interp run`: a whole study from one TOML file (interp.study) into a results folder."""
from __future__ import annotations

import argparse

from interp.commands._options import _argtype, add_command
from interp.study import ANALYSES


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "run", help="run a study file: every analysis of every pair, cached step by step, "
                                     "then the report and the explorer",
                    description="""
        Run a study file (TOML): teacher(s), student(s), reference student(s), data and the analyses
        to run. Every step is cached in --out with its config, seed, model fingerprints, versions and
        timing: a rerun skips finished steps, an interrupted run resumes, and a changed setting
        recomputes only the steps that depend on it. Mistakes in the file (an unknown key, a missing
        folder, different tokenizers or label orders, an analysis without what it needs) stop the run
        before any computation. Ends with results.json, tables.md, report.html and, per pair,
        explorer.html. `interp run default` runs the study shipped for the built-in organism.
        Analyses: """ + "; ".join(f"{k}: {v}" for k, v in ANALYSES.items()) + ".",
                    examples=["interp run default --out runs/demo",
                              "interp run study.toml --out runs/study",
                              "interp run study.toml --out runs/study --set sizes.n=60 --set study.device=cpu",
                              "interp run study.toml --out runs/study --plan   # the steps, cached or to run"])
    p.add_argument("study", help="a study file (.toml), or the name of a shipped study (default)")
    p.add_argument("--out", help="results folder (default: runs/<study file name>)")
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE", dest="overrides",
                   help="override a study-file setting, e.g. sizes.n=60, study.seed=1, pair.main.layer-map=\"0,2,4\" "
                        "(repeatable)")
    p.add_argument("--device", type=_argtype("device"), default=None,
                   help="cpu, cuda, cuda:N or auto (default: the study file's, else auto)")
    p.add_argument("--plan", action="store_true", help="check the study and print its steps; compute nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars (step lines are still printed)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, show the full traceback instead of one line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from interp.study import find_study, load_study
    from interp.study_run import plan, run_study

    path = find_study(args.study)
    overrides = list(args.overrides) + ([f"study.device={args.device}"] if args.device else [])
    study = load_study(path, overrides)
    out = Path(args.out or f"runs/{path.stem}")
    if args.plan:
        from interp.steps import StepCache
        from interp.study_run import prepare

        prepare(study, out, build_zoo=False)
        cache = StepCache(out)
        print(f"study {study.name!r} ({path}): {len(plan(study))} steps -> {out}")
        for s in plan(study):
            state = "stored (reused if its config is unchanged)" if cache.path(s.name).exists() else "to run"
            print(f"  {s.name:<32} {state}")
        return 0
    run_study(study, out, progress=not args.quiet)
    return 0
