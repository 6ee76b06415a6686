"""Options and help conventions every `interp` subcommand shares (one place, so they read the same)."""
from __future__ import annotations

import argparse
import textwrap

from interp.errors import UserError

DIRECTIONS = {
    "denoise": "run the corrupted input and patch in clean activations: which component alone restores the "
               "behaviour (sufficiency; score 1 = restores the clean metric)",
    "noise": "run the clean input and patch in corrupted activations: which component the behaviour needs "
             "(necessity; circuits default to it, since a circuit keeps what the behaviour cannot lose)",
}
METRICS = {"logodds": "log-odds of --label (logit minus logsumexp of the other logits)",
           "prob": "softmax probability of --label"}
LAYER_MAP_HELP = ("student layer -> teacher layer: '0:0,1:2,2:4' (student:teacher pairs) or the plain list '0,2,4' "
                  "(student j -> teacher list[j])")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (not for required options and off-by-default flags); descriptions
    and examples keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def add_command(sub: argparse._SubParsersAction, name: str, help: str, description: str,
                examples: list[str]) -> argparse.ArgumentParser:
    """A subcommand parser with defaults shown in --help and an `examples:` epilog."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(name, help=help, description=textwrap.dedent(description).strip(), epilog=epilog,
                          formatter_class=HelpFormatter)


def choices_help(options: dict[str, str]) -> str:
    """One line per choice, for a --help text: 'a: what a does; b: ...'."""
    return "; ".join(f"{k}: {v}" for k, v in options.items())


def add_common_options(p: argparse.ArgumentParser) -> None:
    """`--device` (where models run) and `--debug` (show the traceback of an error)."""
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when available)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, show the full traceback instead of one line")


def positive_int(text: str) -> int:
    """argparse `type=` for counts (examples, pairs, batch sizes): an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def parse_layer_map(spec: str) -> dict[int, int]:
    """Student layer -> teacher layer from '0:0,1:2,2:4' or the plain list '0,2,4' (student j -> list[j]).

    Raises UserError on any other syntax; ranges are checked against the models by `check_layer_map`.
    """
    items = [x.strip() for x in spec.split(",") if x.strip()]
    try:
        if items and all(":" in x for x in items):
            pairs = [tuple(int(v) for v in x.split(":")) for x in items]
            if any(len(p) != 2 for p in pairs):
                raise ValueError
            out = {s: t for s, t in pairs}
            if len(out) != len(pairs):
                raise UserError(f"--layer-map {spec!r} names a student layer twice")
        elif items and not any(":" in x for x in items):
            out = {j: int(t) for j, t in enumerate(items)}
        else:
            raise ValueError
    except ValueError:
        raise UserError(f"--layer-map {spec!r}: expected {LAYER_MAP_HELP}") from None
    if any(v < 0 for kv in out.items() for v in kv):
        raise UserError(f"--layer-map {spec!r}: layer indices must be >= 0")
    return out


def layer_map_arg(spec: str) -> dict[int, int]:
    """argparse `type=` for --layer-map: a syntax error is reported as a usage error."""
    try:
        return parse_layer_map(spec)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def check_layer_map(layer_map: dict[int, int], n_teacher: int, n_student: int) -> None:
    """Every student layer in [0, n_student) and teacher layer in [0, n_teacher), or a UserError."""
    bad_s = sorted(s for s in layer_map if s >= n_student)
    bad_t = sorted(t for t in layer_map.values() if t >= n_teacher)
    if bad_s or bad_t:
        raise UserError(f"--layer-map {layer_map}: the student has layers 0..{n_student - 1} and the teacher "
                        f"0..{n_teacher - 1}" + (f"; student layer(s) {bad_s} do not exist" if bad_s else "")
                        + (f"; teacher layer(s) {bad_t} do not exist" if bad_t else ""))
