"""The `interp` command: mechanistic interpretability of knowledge distillation (teacher vs student).

Each subcommand lives in `interp/commands/<name>.py` and defines `register(subparsers)`, which adds its
parser and sets `func` (called with the parsed args). Wrong input (a path, an option, a data file
without the needed columns) prints one line and exits with status 2; `--debug` shows the traceback.
"""
from __future__ import annotations

import argparse
import atexit
import importlib
import os
import pkgutil
import sys

from interp import commands

DESCRIPTION = """\
Mechanistic interpretability of knowledge distillation: capture activations of a teacher and its
distilled student, compare them with CKA, find the heads and circuits behind a bias with patching,
and attribute what the student lost to specific heads and layers. Runs offline on a CPU."""
EPILOG = """\
start here:
  interp demo                                   the built-in teacher/student pairs, end to end (= interp run default)
  interp run study.toml --out DIR               a whole study from one TOML file (README: Studies)
  interp data hans --out hans.txt               HANS-format data for the commands below
  interp <command> --help                       options (with defaults) and examples of a command
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (with where to look), status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="interp", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers (interp.commands._options), not subcommands
            continue
        module = importlib.import_module(f"interp.commands.{info.name}")
        module.register(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can act on: wrong input, a refused analysis (no signal), a NaN/inf in the model,
    a path the system refused."""
    from interp.errors import UserError
    from interp.signal import NoSignalError

    return (UserError, NoSignalError, FloatingPointError, FileNotFoundError, PermissionError,
            IsADirectoryError, NotADirectoryError)


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; returns the exit status (0 ok, 2 wrong input or a refused analysis)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed in one line)
        return e.code if isinstance(e.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except _user_errors() as e:
        if getattr(args, "debug", False):
            raise
        print(f"interp {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interp {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The console script (and `python -m interp.cli`): `main`, then exit without tearing the interpreter
    down. With torch and transformers loaded, the teardown (finalising ~2,800 modules) takes about 1 s
    after every command, results already written; output is flushed and exit handlers run first. In
    process (a notebook, the tests) call `main`, which returns the status. Under a profiler or tracer
    (cProfile, coverage) the exit is the normal one, so that they write their results."""
    code = main()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    atexit._run_exitfuncs()  # what a normal exit runs (logging's flush, multiprocessing's clean-up)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`interp ... | head`) or stream: nothing left to say
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
