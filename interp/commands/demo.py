"""`interp demo`: the main job on the built-in default organism.

Builds (or reuses from the cache) the default pair: MiniLM teachers fine-tuned on biased NLI (ERM and
product-of-experts debiased) and 3-layer students distilled from each; prints their HANS metrics (in
%); then, for the debiased teacher and its student, runs the full comparison (head map, head-by-head
effects, cross-model patching, weight patching) into `--out` and prints its tables in full. With the
defaults it uses the HANS sample and size of `analyses/attribute_degradation.py` (seed + 1000, 120
examples per condition), so its debiased-pair numbers are the README's.
"""
from __future__ import annotations

import argparse

from interp.commands._inputs import check_out
from interp.commands._options import add_command, add_common_options, positive_int

HANS_SEED_OFFSET = 1000  # as analyses/attribute_degradation.py: a HANS sample disjoint in seed from the zoo's


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "demo", help="build the default teacher/student pair and explain what the student lost",
                    description=__doc__.split("\n", 2)[2],
                    examples=["interp demo", "interp demo --n 60 --out runs/demo_quick   # about half the time"])
    p.add_argument("--out", default="runs/demo", help="results folder")
    p.add_argument("--n", type=positive_int, default=120, help="HANS examples per condition in the comparison")
    p.add_argument("--seed", type=int, default=0,
                   help=f"zoo seed; the comparison's HANS sample uses seed + {HANS_SEED_OFFSET}")
    add_common_options(p)
    p.set_defaults(func=run)


def _pct(v: object) -> str:
    return f"{100 * v:.1f}" if isinstance(v, (int, float)) else "?"


def zoo_table(metrics: dict[str, dict]) -> str:
    """Markdown table of the zoo models' accuracies in % (the README's unit)."""
    lines = ["| model | in-distribution acc (%) | HANS entailment (%) | HANS non-entailment (%) | spurious gap |",
             "|---|---|---|---|---|"]
    for name, m in metrics.items():
        lines.append(f"| {name} | " + " | ".join(_pct(m.get(k)) for k in
                                                  ("id_acc", "hans_ent", "hans_non_ent", "spurious_gap")) + " |")
    return "\n".join(lines)


def zoo_metrics_json(paths: dict[str, str]) -> dict:
    """The four zoo models' metrics and the HANS examples per subcase they were scored on."""
    import json
    from pathlib import Path

    models = {}
    per_subcase = None
    for k in ("teacher_erm", "student_erm", "teacher_debiased", "student_debiased"):
        rec = json.loads((Path(paths[k]) / "train_config.json").read_text())
        models[k] = rec["metrics"]
        per_subcase = ((rec.get("config") or {}).get("zoo") or {}).get("hans_per_subcase", per_subcase)
    return {"models": models, "hans_per_subcase": per_subcase}


def run(args: argparse.Namespace) -> int:
    from interp.comparison_run import run_comparison
    from interp.data.hans_gen import generate_hans
    from interp.provenance import atomic_write_json
    from interp.train.zoo import build_default_pair, read_metrics

    out = check_out(args.out)
    paths = build_default_pair(seed=args.seed)
    table = zoo_table({k: read_metrics(paths[k]) for k in
                       ("teacher_erm", "student_erm", "teacher_debiased", "student_debiased")})
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "zoo_metrics.md").write_text(table + "\n")
    atomic_write_json(out / "zoo_metrics.json", zoo_metrics_json(paths))  # for `interp figures` (HANS bars)
    run_comparison(paths["teacher_debiased"], paths["student_debiased"],
                   generate_hans(100, seed=args.seed + HANS_SEED_OFFSET), out / "debiased_pair", n=args.n,
                   seed=args.seed, device=args.device)
    print((out / "debiased_pair" / "tables.md").read_text())
    print(f"results in {out}/ (zoo models in {paths['root']})")
    return 0
