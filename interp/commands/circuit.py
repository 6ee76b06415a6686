"""`interp circuit`: node- or edge-level circuit discovery over clean/corrupted pairs -> results folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from interp.commands.patch import add_contrast_args, build_contrast, signal_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("circuit", help="circuit discovery (post-LN valid), pruned to a target faithfulness")
    add_contrast_args(p)
    p.set_defaults(direction="noise")
    p.add_argument("--level", choices=("node", "edge"), default="node")
    p.add_argument("--method", choices=("exact", "atp", "ig"), default="atp",
                   help="scores: exact patching or attribution (edges: exact or atp)")
    p.add_argument("--faithfulness", type=float, default=0.8, help="target faithfulness of the pruned circuit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.circuits import discover
    from interp.plot.circuit import draw_circuit
    from interp.provenance import atomic_write_json, record

    subject, contrast = build_contrast(args)
    circuit = discover(subject, contrast, level=args.level, method=args.method, direction=args.direction,
                       target=args.faithfulness, batch_size=args.batch_size, allow_no_signal=args.allow_no_signal)
    out = Path(args.out)
    config = {k: v for k, v in vars(args).items() if k != "func"}
    circuit.metadata["provenance"] = record(config, seed=args.seed, contrast=contrast.meta)
    circuit.to_json(out / "circuit.json")
    atomic_write_json(out / "run.json", circuit.metadata["provenance"])
    draw_circuit(circuit, out / "circuit.png")
    m = circuit.metadata
    if m["no_signal"]:
        print(f"{args.level} circuit: not pruned, {len(circuit.scores)} raw scores -> {out}")
    else:
        (flo, fhi), (clo, chi) = m["faithfulness_ci95"], m["completeness_ci95"]
        print(f"{args.level} circuit: {len(circuit.nodes)} nodes, {len(circuit.edges)} edges, faithfulness "
              f"{m['faithfulness']:.3f} [{flo:.3f}, {fhi:.3f}], completeness {m['completeness']:.3f} "
              f"[{clo:.3f}, {chi:.3f}] -> {out}")
    print(signal_line(m["signal"], m["no_signal"]))
    return 0
