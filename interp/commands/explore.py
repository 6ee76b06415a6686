"""`interp explore`: one self-contained HTML explorer of a teacher/student pair and its results folder."""
from __future__ import annotations

import argparse

from interp.commands._options import add_command, add_common_options, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "explore", help="interactive offline HTML explorer: circuits side by side, attention, CKA, "
                    "patching maps, degradation ranking",
                    description="""
                    Write one self-contained HTML file (no network: data and scripts inlined) that shows the
                    teacher's and the student's circuits side by side on a layer x head grid, linked through
                    the head map, with attention patterns, CKA, patching maps and the degradation ranking.
                    Parts the results folder lacks are computed from --teacher/--student, or named with the
                    command that computes them.""",
                    examples=["interp explore runs/compare --teacher T --student S",
                              "interp explore --teacher T --student S --n-examples 10 --no-circuits --out x.html"])
    p.add_argument("results", nargs="?", help="an `interp compare` results folder (optional with --teacher/--student)")
    p.add_argument("--teacher", help="teacher checkpoint folder (to compute attention, CKA, patching, circuits)")
    p.add_argument("--student", help="student checkpoint folder")
    p.add_argument("--out", help="HTML file to write (default: RESULTS/explorer.html, else explorer.html)")
    p.add_argument("--n-examples", type=positive_int, default=30, help="HANS examples in the example picker")
    p.add_argument("--n-pairs", type=positive_int, default=32, help="clean/corrupted HANS pairs for patching and circuits")
    p.add_argument("--no-circuits", action="store_true", help="skip edge-level circuit discovery")
    p.add_argument("--seed", type=int, default=0, help="seed of the HANS sample")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from interp.errors import UserError
    from interp.explore import explore

    if args.results is None and not (args.teacher and args.student):
        raise UserError("give a results folder, or --teacher and --student (or both).")
    out = args.out or (str(Path(args.results) / "explorer.html") if args.results else "explorer.html")
    view = explore(args.teacher, args.student, out=out, results=args.results, n_examples=args.n_examples,
                   n_pairs=args.n_pairs, seed=args.seed, device=args.device, circuits=not args.no_circuits)
    missing = ", ".join(view.data["missing"]) or "none"
    print(f"explorer -> {out} ({len(view.html) / 1e6:.2f} MB; missing parts: {missing})")
    if view.data["patching"]:  # the same maps as a figure for papers: shared limits, layer 0 on top
        import numpy as np

        from interp.plot.heads import head_maps

        p = view.data["patching"]
        maps = {role: np.array(p[role]["scores"], dtype=float) for role in ("teacher", "student")}
        label = "raw metric change" if any(p[r]["no_signal"] for r in maps) else "share of the clean - corrupted gap"
        paths = head_maps(maps, Path(out).with_name(Path(out).stem + "_patching_maps"), label=label,
                          title="activation patching, layer x head")
        print("figures -> " + ", ".join(str(x) for x in paths))
    return 0
