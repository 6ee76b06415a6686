"""`interp demo`: the main job on the built-in default organism.

Builds (or reuses from the cache) the default pair: MiniLM teachers fine-tuned on biased NLI (ERM and
product-of-experts debiased) and 3-layer students distilled from each; prints their HANS metrics;
then, for the debiased teacher and its student, runs the full comparison (head map, head-by-head
effects, cross-model patching, ranked degradation attribution) into `--out`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from interp.commands._options import add_common_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the default teacher/student pair and explain what the student lost")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--n", type=int, default=60, help="HANS examples per condition in the comparison")
    p.add_argument("--seed", type=int, default=0)
    add_common_options(p)
    p.set_defaults(func=run)


def _row(name: str, m: dict) -> str:
    keys = ("id_acc", "hans_ent", "hans_non_ent", "spurious_gap")
    vals = [m.get(k) for k in keys]
    return f"| {name} | " + " | ".join(f"{v:.3f}" if isinstance(v, (int, float)) else "?" for v in vals) + " |"


def run(args: argparse.Namespace) -> int:
    from interp.comparison_run import run_comparison
    from interp.data.hans_gen import generate_hans
    from interp.train.zoo import build_default_pair, read_metrics

    paths = build_default_pair(seed=args.seed)
    lines = ["| model | in-distribution acc | HANS entailment | HANS non-entailment | spurious gap |",
             "|---|---|---|---|---|"]
    for key in ("teacher_erm", "student_erm", "teacher_debiased", "student_debiased"):
        lines.append(_row(key, read_metrics(paths[key])))
    print("\n".join(lines))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "zoo_metrics.md").write_text("\n".join(lines) + "\n")
    run_comparison(paths["teacher_debiased"], paths["student_debiased"], generate_hans(100, seed=args.seed),
                   out / "debiased_pair", n=args.n, seed=args.seed, device=args.device)
    print((out / "debiased_pair" / "tables.md").read_text()[:2500])
    print(f"results in {out}/ (zoo models in {paths['root']})")
    return 0
