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
        module = importlib.import_module(f"interp.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
