"""`interp capture`: record sites of a model over a dataset into a results folder."""
from __future__ import annotations

import argparse

from interp.capture import POOLS
from interp.commands._inputs import check_out, load_model, model_info, read_data
from interp.commands._options import add_command, add_common_options, positive_int
from interp.errors import UserError
from interp.subject import BACKENDS

POOL_HELP = ("cls: the first token; mean: mean over real tokens; positions: the token at each example's "
             "'position'; none: every token (padded)")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "capture", help="record activations of a model over a dataset (safetensors shards)",
                    description="""
        Record activations at named sites (TransformerLens names, globs allowed) of one model over a data
        file, pooled per example, into safetensors shards with a manifest. An interrupted capture resumes
        where it stopped.""",
                    examples=["interp data hans --n-per-subcase 5 --out hans.txt",
                              'interp capture --model T --data hans.txt --sites "blocks.*.hook_resid_post" '
                              "--pool mean --out runs/acts"])
    p.add_argument("--model", required=True, help="HuggingFace checkpoint folder")
    p.add_argument("--data", required=True,
                   help="examples: .jsonl (premise/hypothesis or text per line) or HANS .txt/.tsv")
    p.add_argument("--sites", nargs="+", default=["blocks.*.hook_resid_post"], help="site names or globs")
    p.add_argument("--pool", choices=POOLS, default="cls", help=POOL_HELP)
    p.add_argument("--out", required=True, help="output folder (resumes an interrupted capture)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="examples per forward pass")
    p.add_argument("--max-length", type=positive_int, default=128, help="tokens per example (truncated beyond)")
    p.add_argument("--shard-size", type=positive_int, default=2048, help="examples per safetensors shard")
    p.add_argument("--backend", choices=BACKENDS, default="hooks",
                   help="how activations are read (same numbers on every backend; hooks is fastest)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from interp.capture import capture

    model_info(args.model, "model")
    examples = read_data(args.data)
    out = check_out(args.out)
    subject = load_model(args.model, "model", args.device, backend=args.backend)
    try:
        subject.expand(args.sites)
    except (ValueError, KeyError) as e:
        raise UserError(f"--sites: {e}") from None
    cap = capture(subject, examples, args.sites, pool=args.pool, batch_size=args.batch_size,
                  max_length=args.max_length, out_dir=Path(out), shard_size=args.shard_size, seed=args.seed)
    print(f"captured {len(cap)} examples x {len(cap.acts)} sites -> {args.out}")
    return 0
