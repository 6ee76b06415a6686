"""Options and help conventions every `interp` subcommand shares (one place, so they read the same)."""
from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    p.add_argument("--device", type=_argtype("device"), default="auto", help=VOCAB["device"].help)
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


# --- one vocabulary: the options every subcommand and the study file (interp.study) share -------------------
@dataclass(frozen=True)
class Option:
    """A shared option: `check(value)` turns a command-line string or a TOML value into the option's value,
    or raises ValueError saying what is expected. Its flag is `--<name>`, its study-file key `<name>`."""

    help: str
    check: Callable[[Any], Any]


def _whole(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError(f"expected a whole number, got {v!r}")
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"expected a whole number, got {v!r}") from None


def _at_least(low: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        n = _whole(v)
        if n < low:
            raise ValueError(f"must be at least {low}, got {n}")
        return n
    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {v!r}")
        return str(v)
    return check


def _device(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
        raise ValueError(f"expected cpu, cuda, cuda:N or auto, got {v!r}")
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _fraction_value(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError(f"expected a number in (0, 1], got {v!r}")
    try:
        x = float(v)
    except ValueError:
        raise ValueError(f"expected a number in (0, 1], got {v!r}") from None
    if not 0 < x <= 1:
        raise ValueError(f"must be in (0, 1], got {x}")
    return x


def _layer_map_value(v: Any) -> dict[int, int]:
    """'0:0,1:2' or '0,2,4' (a string), or the plain list [0, 2, 4] (a TOML array)."""
    if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        v = ",".join(str(x) for x in v)
    if not isinstance(v, str):
        raise ValueError(f"expected {LAYER_MAP_HELP}, got {v!r}")
    try:
        return parse_layer_map(v)
    except UserError:
        raise ValueError(f"expected {LAYER_MAP_HELP}, got {v!r}") from None


VOCAB: dict[str, Option] = {
    "device": Option("cpu, cuda, cuda:N or auto (CUDA when available)", _device),
    "seed": Option("random seed (sampling, generated data, bootstrap)", _whole),
    "n": Option("HANS examples per condition in the teacher-vs-student comparison (non-entailment = "
                "bias-triggering, entailment = control)", _at_least(1)),
    "n-pairs": Option("clean/corrupted HANS pairs for patching and circuits", _at_least(1)),
    "n-examples": Option("HANS examples in the explorer's example picker", _at_least(1)),
    "n-per-subcase": Option("generated HANS examples per subcase (30 subcases)", _at_least(1)),
    "n-boot": Option("bootstrap replicates for CKA intervals (0: none)", _at_least(0)),
    "batch-size": Option("examples per forward pass", _at_least(1)),
    "max-length": Option("tokens per example (truncated beyond)", _at_least(1)),
    "layer-map": Option(LAYER_MAP_HELP, _layer_map_value),
    "pool": Option("pooling over tokens: cls = the first token, mean = mean over real tokens", _choice("cls", "mean")),
    "debiased": Option("debiased CKA (unbiased HSIC); recommended for small n", _flag),
    "faithfulness": Option("target faithfulness of a pruned circuit (share of the clean - corrupted gap it keeps)",
                           _fraction_value),
    "pairs": Option("clean/corrupted pairs: hans:break_overlap or hans:swap", _choice("hans:break_overlap", "hans:swap")),
}


def _argtype(name: str) -> Callable[[str], Any]:
    """argparse `type=` from the shared vocabulary: a bad value is a one-line usage error."""
    def convert(text: str) -> Any:
        try:
            return VOCAB[name].check(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = name
    return convert
