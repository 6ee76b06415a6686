"""`interp circuit`: node- or edge-level circuit discovery over clean/corrupted pairs -> results folder."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from interp.commands._options import add_command, positive_int
from interp.commands.patch import add_contrast_args, build_contrast, signal_line


def _number_in(ok: Callable[[float], bool], interval: str, hint: str = "") -> Callable[[str], float]:
    """An argparse type: a float for which ok(v) holds, else an error naming `interval`."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be in {interval}{hint}, got {v}")
        return v
    return parse


_fraction = _number_in(lambda v: 0 < v <= 1, "(0, 1]")
_tolerance = _number_in(lambda v: 0 <= v < 1, "[0, 1)", " (a share of the circuit's size, e.g. 0.02)")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "circuit", help="circuit discovery (post-LN valid), pruned to a target faithfulness",
                    description="""
        Score every node (head, MLP) or edge (sender -> receiver's q/k/v/MLP input) by patching, keep the
        fewest top-scoring ones whose circuit reaches --faithfulness, and report faithfulness and
        completeness with bootstrap intervals. Defaults to noising (see --direction): a circuit is what the
        behaviour cannot lose, unlike `interp patch`, which by default asks what alone restores it.
        Writes circuit.json, run.json and circuit.png.""",
                    examples=["interp circuit --model T --pairs hans:swap --level edge --method atp "
                              "--faithfulness 0.8 --out runs/circuit"])
    add_contrast_args(p, direction="noise")
    p.add_argument("--level", choices=("node", "edge"), default="node",
                   help="node: heads and MLPs; edge: connections between them (far more candidates)")
    p.add_argument("--method", choices=("exact", "atp", "ig"), default="atp",
                   help="scores: exact patching, attribution patching (atp) or integrated gradients (ig, EAP-IG "
                        "for edges)")
    p.add_argument("--steps", type=positive_int, default=8, help="integration points of --method ig")
    p.add_argument("--faithfulness", type=_fraction, default=0.8,
                   help="target faithfulness of the pruned circuit (share of the clean - corrupted gap it keeps)")
    p.add_argument("--tolerance", type=_tolerance, default=0.02,
                   help="how far above the fewest items reaching --faithfulness the kept count may be, as a share of "
                        "it (0: exact, 0-4 more circuit runs for the zoo's edge circuits at faithfulness 0.8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.circuits import discover
    from interp.plot.circuit import draw_circuit
    from interp.provenance import atomic_write_json, record

    subject, contrast = build_contrast(args)
    circuit = discover(subject, contrast, level=args.level, method=args.method, direction=args.direction,
                       target=args.faithfulness, batch_size=args.batch_size, allow_no_signal=args.allow_no_signal,
                       steps=args.steps, tolerance=args.tolerance)
    out = Path(args.out)
    config = {k: v for k, v in vars(args).items() if k != "func"}
    circuit.metadata["provenance"] = record(config, seed=args.seed, contrast=contrast.meta)
    circuit.to_json(out / "circuit.json")
    atomic_write_json(out / "run.json", circuit.metadata["provenance"])
    draw_circuit(circuit, out / "circuit.png", subtitle=f"{subject.name}, {args.pairs} (n={len(contrast)}), "
                                                        f"{args.method}, {args.direction}")
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
