"""`interp data`: write the data files the other commands read (HANS-format and biased NLI)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from interp.commands._options import HelpFormatter, add_command, positive_int
from interp.errors import UserError


def _bias(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {v}")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "data", help="write HANS-format or biased NLI data files",
                    description="""
        Write the data files the other commands read, reproducibly from a seed:
          hans  HANS-style examples (our generator, all 30 subcases) in the official tab-separated
                format, plus an `overlap` column (hypothesis -> premise token alignment)
          nli   biased 3-way NLI examples as JSON lines, lexical overlap a cue of controllable strength""",
                    examples=["interp data hans --n-per-subcase 5 --out hans.txt",
                              "interp data nli --n 3000 --bias 0.9 --out nli.jsonl"])
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{hans,nli}")
    h = kinds.add_parser("hans", help="HANS-format examples (official columns), tab-separated",
                         formatter_class=HelpFormatter,
                         epilog="example:\n  interp data hans --n-per-subcase 40 --seed 7 --out runs/hans_40.txt")
    h.add_argument("--n-per-subcase", type=positive_int, default=100,
                   help="examples per subcase (30 subcases: 3 heuristics x 5 non-entailment + 5 entailment)")
    h.add_argument("--seed", type=int, default=0, help="random seed (same seed, same file)")
    h.add_argument("--out", required=True, help="output file (.txt or .tsv)")
    h.set_defaults(func=run_hans)
    n = kinds.add_parser("nli", help="biased NLI examples (entailment / neutral / contradiction) as JSON lines",
                         formatter_class=HelpFormatter,
                         epilog="example:\n  interp data nli --n 3000 --bias 0.9 --seed 0 --out nli.jsonl")
    n.add_argument("--n", type=positive_int, default=3000, help="number of examples (labels balanced)")
    n.add_argument("--bias", type=_bias, default=0.9,
                   help="fraction of each label aligned with the overlap cue (0.5: no cue, 1: a perfect cue)")
    n.add_argument("--seed", type=int, default=0, help="random seed (same seed, same file)")
    n.add_argument("--out", required=True, help="output file (.jsonl)")
    n.set_defaults(func=run_nli)


def _out(path: str, suffixes: tuple[str, ...]) -> Path:
    p = Path(path)
    if p.suffix not in suffixes:
        raise UserError(f"--out {path}: use a {' or '.join(suffixes)} file name (what the other commands read)")
    if p.is_dir():
        raise UserError(f"--out {path}: is a folder; give a file name")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def run_hans(args: argparse.Namespace) -> int:
    from interp.data.hans import write_hans
    from interp.data.hans_gen import generate_hans

    out = _out(args.out, (".txt", ".tsv"))
    examples = generate_hans(args.n_per_subcase, seed=args.seed)
    write_hans(examples, out)
    print(f"wrote {len(examples)} HANS examples ({args.n_per_subcase} per subcase, seed {args.seed}) -> {out}")
    return 0


def run_nli(args: argparse.Namespace) -> int:
    from interp.data.nli_gen import generate_nli

    out = _out(args.out, (".jsonl",))
    examples = generate_nli(args.n, bias=args.bias, seed=args.seed)
    out.write_text("".join(json.dumps(e) + "\n" for e in examples))
    print(f"wrote {len(examples)} NLI examples (bias {args.bias}, seed {args.seed}) -> {out}")
    return 0
