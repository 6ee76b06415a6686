"""The `interp` command. Each subcommand lives in `interp/commands/<name>.py` and defines
`register(subparsers)`, which adds its parser and sets `func` (called with the parsed args)."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from interp import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers (interp.commands._options), not subcommands
            continue
        module = importlib.import_module(f"interp.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. A refused analysis (no signal, or a NaN/inf in the model) prints one line to
    stderr and returns 2 instead of a traceback."""
    from interp.signal import NoSignalError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (NoSignalError, FloatingPointError) as e:
        print(f"interp {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
