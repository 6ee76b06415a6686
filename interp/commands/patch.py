"""`interp patch`: activation or attribution patching over clean/corrupted pairs -> results folder."""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import torch

from interp.commands._options import add_common_options
from interp.subject import load_subject


def add_contrast_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="HuggingFace checkpoint folder")
    p.add_argument("--pairs", default="hans:break_overlap",
                   help="hans:break_overlap | hans:swap | a .jsonl file with {'clean': {...}, 'corrupt': {...}} lines")
    p.add_argument("--n", type=int, default=256, help="number of pairs (HANS generator)")
    p.add_argument("--align", choices=("strict", "pad", "drop"), default="strict")
    p.add_argument("--metric", choices=("logodds", "prob"), default="logodds")
    p.add_argument("--label", default="entailment", help="label name or index whose log-odds/probability is scored")
    p.add_argument("--direction", choices=("denoise", "noise"), default="denoise")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    add_common_options(p)
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--allow-no-signal", action="store_true",
                   help="when the clean - corrupted gap is not significant, write raw (unnormalised) metric changes "
                        "marked NO SIGNAL instead of refusing")


def build_contrast(args: argparse.Namespace) -> tuple[Any, Any]:
    from interp.contrast import hans_pairs, make_contrast, make_metric

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    subject = load_subject(args.model, device=args.device)
    if args.pairs.startswith("hans:"):
        clean, corrupt = hans_pairs(args.n, kind=args.pairs.split(":", 1)[1], seed=args.seed,
                                    tokenizer=subject.tokenizer)
    else:
        rows = [json.loads(line) for line in Path(args.pairs).read_text().splitlines() if line.strip()]
        clean, corrupt = [r["clean"] for r in rows], [r["corrupt"] for r in rows]
    label: int | str = int(args.label) if str(args.label).isdigit() else args.label
    metric = make_metric(subject, args.metric, label)
    return subject, make_contrast(subject, clean, corrupt, metric=metric, align=args.align)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("patch", help="activation / attribution patching of heads, MLPs, attention or residual")
    add_contrast_args(p)
    p.add_argument("--component", choices=("head", "attn_out", "mlp_out", "resid"), default="head")
    p.add_argument("--per-position", action="store_true")
    p.add_argument("--method", choices=("exact", "atp", "ig"), default="exact")
    p.add_argument("--steps", type=int, default=8, help="interpolation steps for --method ig")
    p.add_argument("--max-rows", type=int, default=None,
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
                                              "result": res.to_dict()})
    heatmap(res, out / "patching.png")
    print(f"{args.method} {args.direction} {args.component}: clean {res.clean_metric:.4f}, corrupt "
          f"{res.corrupt_metric:.4f}, {len(contrast)} pairs -> {out}")
    print(signal_line(res.signal, res.no_signal))
    return 0


def signal_line(signal: dict, no_signal: bool) -> str:
    """The gap with its interval, and the NO SIGNAL flag when the override let a run through."""
    lo, hi = signal["ci95"]
    line = f"gap (clean - corrupted) {signal['gap']:+.4g}, 95% CI [{lo:+.4g}, {hi:+.4g}], n = {signal['n']}"
    if no_signal:
        line += ("\nNO SIGNAL: the gap cannot be told apart from 0 (--allow-no-signal): scores are raw metric "
                 "changes, not shares of the gap")
    return line
