"""`interp compare`: teacher vs student on HANS -> results folder (JSON, tables, figures)."""
from __future__ import annotations

import argparse

from interp.commands._options import add_common_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="head map, head-by-head effects, activation and weight patching against the teacher (and a reference)")
    p.add_argument("--teacher", required=True, help="teacher checkpoint folder")
    p.add_argument("--student", required=True, help="student checkpoint folder")
    p.add_argument("--data", help="HANS file (official format); default: our generator, 100 per subcase")
    p.add_argument("--n", type=int, default=120, help="examples per condition (triggering, control)")
    p.add_argument("--layer-map", help="student:teacher pairs, e.g. 0:0,1:2,2:4 (default: from the student's init, else CKA)")
    p.add_argument("--reference", help="a reference student of the student's architecture (e.g. the student distilled "
                   "from the ERM teacher, the no-KD student, the student at initialisation): adds weight and "
                   "activation patching of the reference-minus-student gap")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.comparison_run import run_comparison
    from interp.data.hans import load_hans
    from interp.data.hans_gen import generate_hans

    hans = load_hans(args.data) if args.data else generate_hans(100, seed=args.seed)
    layer_map = None
    if args.layer_map:
        layer_map = {int(a): int(b) for a, b in (kv.split(":") for kv in args.layer_map.split(","))}
    run_comparison(args.teacher, args.student, hans, args.out, n=args.n, seed=args.seed, layer_map=layer_map,
                   reference=args.reference, device=args.device)
    print(open(f"{args.out}/tables.md").read())
    return 0
