"""`interp patch`: activation or attribution patching over clean/corrupted pairs -> results folder."""
from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from interp.commands._inputs import check_out, load_model, model_info, read_pairs
from interp.commands._options import (
    DIRECTIONS,
    METRICS,
    add_command,
    add_common_options,
    choices_help,
    positive_int,
)
from interp.errors import UserError

HANS_KINDS = ("break_overlap", "swap")
PAIRS_HELP = ("hans:break_overlap (clean: a HANS lexical-overlap pair; corrupted: its overlapping content words "
              "replaced) | hans:swap (clean: subject/object swap; corrupted: hypothesis = premise) | a .jsonl file "
              "of {\"clean\": {...}, \"corrupt\": {...}} lines")
ALIGN_HELP = ("clean and corrupted token lengths must match (strict), or are padded to the longer (pad), or "
              "mismatched pairs are dropped (drop)")


def add_contrast_args(p: argparse.ArgumentParser, direction: str) -> None:
    """Options of a clean/corrupted contrast, shared by patch and circuit (`direction`: its default)."""
    p.add_argument("--model", required=True, help="HuggingFace checkpoint folder")
    p.add_argument("--pairs", default="hans:break_overlap", help=PAIRS_HELP)
    p.add_argument("--n", type=positive_int, default=256, help="number of pairs (hans:* pairs only)")
    p.add_argument("--align", choices=("strict", "pad", "drop"), default="strict", help=ALIGN_HELP)
    p.add_argument("--metric", choices=tuple(METRICS), default="logodds", help=choices_help(METRICS))
    p.add_argument("--label", default="entailment", help="label name or index whose log-odds/probability is scored")
    p.add_argument("--direction", choices=tuple(DIRECTIONS), default=direction, help=choices_help(DIRECTIONS))
    p.add_argument("--batch-size", type=positive_int, default=32, help="pairs per forward pass")
    p.add_argument("--seed", type=int, default=0, help="random seed (pair generation, bootstrap)")
    add_common_options(p)
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--allow-no-signal", action="store_true",
                   help="when the clean - corrupted gap is not significant, write raw (unnormalised) metric changes "
                        "marked NO SIGNAL instead of refusing")


def check_contrast_args(args: argparse.Namespace) -> tuple[list[dict], list[dict]] | None:
    """Validate the contrast options without loading the model; the pairs of a .jsonl file, else None."""
    model_info(args.model, "model")
    if getattr(args, "out", None):
        check_out(args.out)
    if args.pairs.startswith("hans:"):
        kind = args.pairs.split(":", 1)[1]
        if kind not in HANS_KINDS:
            raise UserError(f"--pairs {args.pairs}: unknown HANS pair kind {kind!r}; choose "
                            f"{' or '.join('hans:' + k for k in HANS_KINDS)}, or give a .jsonl file")
        return None
    return read_pairs(args.pairs)


def build_contrast(args: argparse.Namespace) -> tuple[Any, Any]:
    """(Subject, Contrast) from the contrast options; inputs are checked before the model is loaded."""
    import torch

    from interp.contrast import hans_pairs, make_contrast, make_metric

    pairs = check_contrast_args(args)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    subject = load_model(args.model, "model", args.device)
    if pairs is None:
        clean, corrupt = hans_pairs(args.n, kind=args.pairs.split(":", 1)[1], seed=args.seed,
                                    tokenizer=subject.tokenizer)
    else:
        clean, corrupt = pairs
    label: int | str = int(args.label) if str(args.label).isdigit() else args.label
    try:
        metric = make_metric(subject, args.metric, label)
        contrast = make_contrast(subject, clean, corrupt, metric=metric, align=args.align)
    except (ValueError, KeyError, IndexError) as e:
        raise UserError(str(e)) from e
    return subject, contrast


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "patch", help="activation / attribution patching of heads, MLPs, attention or residual",
                    description="""
        Patch every component of one kind between clean and corrupted runs and score how much of the
        clean - corrupted gap in the metric each one moves (1 = all of it). Refuses (exit 2) when the gap
        cannot be told apart from 0, unless --allow-no-signal. Writes patching.json and patching.png.""",
                    examples=["interp patch --model T --pairs hans:break_overlap --component head --out runs/patch",
                              "interp patch --model T --pairs pairs.jsonl --method atp --direction noise --out runs/p"])
    add_contrast_args(p, direction="denoise")
    p.add_argument("--component", choices=("head", "attn_out", "mlp_out", "resid"), default="head",
                   help="head: each head's z; attn_out / mlp_out: each layer's attention / MLP output; "
                        "resid: the residual stream after each layer (per position)")
    p.add_argument("--per-position", action="store_true", help="score each token position separately")
    p.add_argument("--method", choices=("exact", "atp", "ig"), default="exact",
                   help="exact: activation patching (one patched forward per component); atp: attribution "
                        "patching (gradient x difference, one backward); ig: integrated gradients over --steps")
    p.add_argument("--steps", type=positive_int, default=8, help="interpolation steps for --method ig")
    p.add_argument("--max-rows", type=positive_int, default=None,
                   help="sequences per expanded forward (memory bound; default: about 4096 tokens)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.attribution import attribute
    from interp.patching import patch
    from interp.plot.patching import heatmap
    from interp.provenance import atomic_write_json, record

    subject, contrast = build_contrast(args)
    per_pos = args.per_position or args.component == "resid"
    if args.method == "exact":
        res = patch(subject, contrast, args.component, per_pos, args.direction, batch_size=args.batch_size,
                    max_rows=args.max_rows, allow_no_signal=args.allow_no_signal)
    else:
        res = attribute(subject, contrast, args.component, per_pos, args.direction, method=args.method,
                        steps=args.steps, batch_size=args.batch_size, allow_no_signal=args.allow_no_signal)
    out = Path(args.out)
    config = {k: v for k, v in vars(args).items() if k != "func"}
    atomic_write_json(out / "patching.json", {**record(config, seed=args.seed, model=subject.name,
                                                       fingerprint=subject.fingerprint, contrast=contrast.meta),
                                              "result": res.to_dict(), "tokens": first_tokens(subject, contrast)})
    heatmap(res, out / "patching.png", title=f"{subject.name}: {args.method} {args.direction}, {args.component}, "
                                             f"{args.pairs} (n={len(contrast)})")
    print(f"{args.method} {args.direction} {args.component}: clean {res.clean_metric:.4f}, corrupt "
          f"{res.corrupt_metric:.4f}, {len(contrast)} pairs -> {out}")
    print(signal_line(res.signal, res.no_signal))
    return 0


def first_tokens(subject: Any, contrast: Any) -> list[str] | None:
    """The tokens of the first clean example (per-position figures label positions with them)."""
    ids = contrast.clean.get("input_ids")
    if ids is None or not hasattr(subject.tokenizer, "convert_ids_to_tokens"):
        return None
    return list(subject.tokenizer.convert_ids_to_tokens(ids[0].tolist()))


def signal_line(signal: dict, no_signal: bool) -> str:
    """The gap with its interval, and the NO SIGNAL flag when the override let a run through."""
    lo, hi = signal["ci95"]
    line = f"gap (clean - corrupted) {signal['gap']:+.4g}, 95% CI [{lo:+.4g}, {hi:+.4g}], n = {signal['n']}"
    if no_signal:
        line += ("\nNO SIGNAL: the gap cannot be told apart from 0 (--allow-no-signal): scores are raw metric "
                 "changes, not shares of the gap")
    return line
