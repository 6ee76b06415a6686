"""`interp compare`: teacher vs student on HANS -> results folder (JSON, tables, figures)."""
from __future__ import annotations

import argparse

from interp.commands._inputs import check_out, load_model, model_info, read_hans
from interp.commands._options import (
    LAYER_MAP_HELP,
    add_command,
    add_common_options,
    check_layer_map,
    layer_map_arg,
    positive_int,
)
from interp.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "compare", help="head map, head-by-head effects, activation and weight patching against "
                                         "the teacher (and a reference)",
                    description="""
        Why did the student lose what the teacher knew? Pairs the models (layer map, Hungarian head map),
        measures each head's effect in both, then attributes the teacher - student gap on HANS
        non-entailment inputs: activation patching (would the teacher's activation here fix the
        student?) and weight patching (would the teacher's parameters here fix it?). Writes
        results.json, tables.md and figures; an interrupted run resumes.""",
                    examples=["interp compare --teacher T --student S --out runs/compare",
                              "interp compare --teacher T --student S --data hans.txt --layer-map 0,2,4 "
                              "--reference S_erm --out runs/compare"])
    p.add_argument("--teacher", required=True, help="teacher checkpoint folder")
    p.add_argument("--student", required=True, help="student checkpoint folder")
    p.add_argument("--data", help="HANS file (official tab-separated format, e.g. from `interp data hans`); "
                                   "default: our generator, 100 per subcase, from --seed")
    p.add_argument("--n", type=positive_int, default=120,
                   help="examples per condition (HANS non-entailment = bias-triggering, entailment = control)")
    p.add_argument("--layer-map", type=layer_map_arg, default=None,
                   help=LAYER_MAP_HELP + "; default: from the student's init, else by CKA")
    p.add_argument("--reference", help="a reference student of the student's architecture (e.g. the student distilled "
                   "from the ERM teacher, the no-KD student, the student at initialisation): adds weight and "
                   "activation patching of the reference-minus-student gap")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (HANS generation, sampling, bootstrap)")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.comparison_run import run_comparison
    from interp.data.hans_gen import generate_hans

    t_info, s_info = model_info(args.teacher, "teacher"), model_info(args.student, "student")
    if args.reference:
        model_info(args.reference, "reference")
    check_out(args.out)
    hans = read_hans(args.data) if args.data else generate_hans(100, seed=args.seed)
    labels = {ex["label"] for ex in hans}
    if labels != {"entailment", "non-entailment"}:
        raise UserError(f"--data {args.data}: needs both HANS labels (entailment and non-entailment), found "
                        f"{', '.join(sorted(labels))}")
    if args.layer_map is not None:
        check_layer_map(args.layer_map, t_info.n_layers, s_info.n_layers)
    teacher = load_model(args.teacher, "teacher", args.device)
    student = load_model(args.student, "student", args.device)
    reference = load_model(args.reference, "reference", args.device) if args.reference else None
    run_comparison(teacher, student, hans, args.out, n=args.n, seed=args.seed, layer_map=args.layer_map,
                   reference=reference, device=args.device)
    print(open(f"{args.out}/tables.md").read())
    return 0
