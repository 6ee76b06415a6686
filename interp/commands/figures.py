"""`interp figures RESULTS`: every figure a results folder allows, as PNG and SVG, without running a model."""
from __future__ import annotations

import argparse

from interp.commands._options import add_command, add_common_options


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "figures", help="draw every figure a results folder allows (PNG + SVG), no model run",
                    description="""
                    Draw the figures of a results folder from what it holds: head maps and attribution
                    (interp compare), layer x head patching, matched attention and circuits (interp explore
                    RESULTS), CKA by HANS condition (interp cka --out RESULTS/cka), per-position and
                    attribution-vs-exact patching (interp patch --out RESULTS/...), HANS accuracy bars
                    (interp demo's zoo_metrics.json, a study's results.json). Each skipped figure is listed
                    with the missing part and the command that computes it.""",
                    examples=["interp figures runs/compare", "interp figures runs/demo --out figures/demo",
                              "interp figures runs/compare --only head_map cka_conditions"])
    p.add_argument("results", help="a results folder (e.g. of `interp compare`, `interp demo`)")
    p.add_argument("--out", help="folder for the figures (default: RESULTS/figures)")
    p.add_argument("--prefix", default="", help="prefix of the file names (e.g. demo_)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="draw only these figures")
    add_common_options(p)  # nothing runs a model here; accepted so every subcommand reads the same
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.errors import UserError
    from interp.figures import FIGURES, draw_figures

    unknown = [n for n in args.only or [] if n not in FIGURES]
    if unknown:
        raise UserError(f"--only {' '.join(unknown)}: unknown figure; choose from {', '.join(FIGURES)}")
    drawn = draw_figures(args.results, args.out, prefix=args.prefix, names=args.only)
    for name, paths in drawn.written.items():
        print(f"{name}: {', '.join(str(p) for p in paths)}")
    for name, e in drawn.skipped.items():
        print(f"skipped {name}: needs the {e.part!r} part: {e.why}; compute it with `{e.command}`")
    if not drawn.written:
        raise UserError(f"{args.results}: no figure could be drawn (every part is missing; see above)")
    print(f"{len(drawn.written)} figures drawn, {len(drawn.skipped)} skipped")
    return 0
