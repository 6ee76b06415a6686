"""`interp report`: one self-contained HTML page of a results folder's tables and figures."""
from __future__ import annotations

import argparse

from interp.commands._options import add_command, add_common_options


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "report", help="one self-contained HTML page of a results folder's tables and figures",
                    description="""
                    Collect a results folder's tables, figures and provenance into one HTML page that needs
                    no network (figures embedded).""",
                    examples=["interp report runs/compare", "interp report runs/compare --out report.html"])
    p.add_argument("results", help="a results folder (e.g. of `interp compare`)")
    p.add_argument("--out", help="HTML file (default: RESULTS/report.html)")
    add_common_options(p)  # nothing runs a model here; accepted so every subcommand reads the same
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.report import report

    path = report(args.results, args.out)
    print(f"report -> {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0
