"""`interp capture`: record sites of a model over a dataset into a results folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from interp.capture import POOLS, capture
from interp.commands._options import add_common_options
from interp.datafiles import read_examples
from interp.subject import BACKENDS, load_subject


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capture", help="record activations of a model over a dataset (safetensors shards)")
    p.add_argument("--model", required=True, help="HuggingFace checkpoint folder")
    p.add_argument("--data", required=True, help="examples: .jsonl (premise/hypothesis or text per line) or HANS .txt/.tsv")
    p.add_argument("--sites", nargs="+", default=["blocks.*.hook_resid_post"], help="site names or globs")
    p.add_argument("--pool", choices=POOLS, default="cls")
    p.add_argument("--out", required=True, help="output folder (resumes an interrupted capture)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--shard-size", type=int, default=2048)
    p.add_argument("--backend", choices=BACKENDS, default="hooks")
    p.add_argument("--seed", type=int, default=0)
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    subject = load_subject(args.model, backend=args.backend, device=args.device)
    cap = capture(subject, read_examples(args.data), args.sites, pool=args.pool, batch_size=args.batch_size,
                  max_length=args.max_length, out_dir=Path(args.out), shard_size=args.shard_size, seed=args.seed)
    print(f"captured {len(cap)} examples x {len(cap.acts)} sites -> {args.out}")
    return 0
