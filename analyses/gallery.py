"""Regenerate the README's gallery (figures/gallery_*.png and .svg) from the default pair's results folder.

Draws every figure `interp figures` can from the folder (`interp.figures.draw_figures`). With
`--teacher/--student` (checkpoint folders of the pair the folder was computed for) it first computes the
parts the folder lacks and the figures need: the explorer's data (attention patterns, layer x head
patching, circuits: `interp explore`), CKA by HANS condition (`interp cka --conditions hans`), exact and
AtP head patching and per-position residual patching of the teacher (`interp patch`). Nothing is trained.

    .venv/bin/python analyses/gallery.py                                  # runs/demo (after `interp demo`)
    .venv/bin/python analyses/gallery.py --results runs/demo --teacher T --student S
    .venv/bin/python analyses/gallery.py --results runs/demo --default-pair     # `make figures`
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
PREFIX = "gallery_"


def compute_parts(results: Path, teacher: str, student: str, n_pairs: int, seed: int) -> None:
    """The parts `interp figures` needs beyond `interp compare`'s results, each skipped when present."""
    from interp.cli import main

    compare = next((d for d in [results, *sorted(results.iterdir())] if (d / "results.json").is_file()), results)
    hans = compare / "gallery_hans.txt"
    steps = {
        compare / "explore" / "data.json": ["explore", str(compare), "--teacher", teacher, "--student", student,
                                            "--n-pairs", str(n_pairs), "--seed", str(seed)],
        hans: ["data", "hans", "--n-per-subcase", "10", "--seed", str(seed), "--out", str(hans)],
        compare / "cka" / "cka.json": ["cka", "--teacher", teacher, "--student", student, "--data", str(hans),
                                       "--conditions", "hans", "--debiased", "--out", str(compare / "cka")],
    }
    for method in ("exact", "atp"):
        steps[compare / f"patch_{method}" / "patching.json"] = [
            "patch", "--model", teacher, "--method", method, "--n", str(n_pairs), "--seed", str(seed),
            "--allow-no-signal", "--out", str(compare / f"patch_{method}")]
    steps[compare / "patch_resid" / "patching.json"] = [
        "patch", "--model", teacher, "--component", "resid", "--n", str(n_pairs), "--seed", str(seed),
        "--allow-no-signal", "--out", str(compare / "patch_resid")]
    for done, argv in steps.items():
        if done.exists():
            print(f"have {done}")
            continue
        print("interp " + " ".join(argv), flush=True)
        if main(argv) != 0:
            raise SystemExit(f"failed: interp {' '.join(argv)}")


def pair_folder(study: Path) -> Path:
    """A study's `debiased_pair` folder (the default pair), else its first pair folder; the study's zoo
    metrics (for the HANS figures) are copied next to it."""
    import shutil

    pairs = sorted(d for d in study.iterdir() if d.is_dir() and (d / "results.json").is_file())
    if not pairs:
        raise SystemExit(f"{study} is a study folder without pair folders: has `interp run` finished?")
    folder = next((d for d in pairs if d.name == "debiased_pair"), pairs[0])
    if (study / "zoo_metrics.json").is_file() and not (folder / "zoo_metrics.json").is_file():
        shutil.copy(study / "zoo_metrics.json", folder / "zoo_metrics.json")
    print(f"{study} is a study: drawing {folder}")
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="runs/demo", help="results folder of the default pair (interp demo's)")
    ap.add_argument("--out", default=str(ROOT / "figures"), help="gallery folder")
    ap.add_argument("--default-pair", action="store_true",
                    help="the default pair's debiased teacher and student from the zoo cache (as `interp demo`; "
                         "trains them if the cache lacks them): compute the missing parts first")
    ap.add_argument("--teacher", help="teacher checkpoint folder: compute the missing parts first")
    ap.add_argument("--student", help="student checkpoint folder")
    ap.add_argument("--n-pairs", type=int, default=64, help="clean/corrupted pairs for patching and circuits")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from interp.figures import draw_figures

    results = Path(args.results)
    if not results.is_dir():
        raise SystemExit(f"{results} does not exist: run `interp demo --out {results}` first (or pass --results).")
    if (results / "study.json").is_file():  # `make demo`'s study folder: draw from one pair's comparison
        results = pair_folder(results)
    if bool(args.teacher) != bool(args.student):
        raise SystemExit("pass both --teacher and --student, or neither")
    if args.default_pair:
        from interp.provenance import atomic_write_json
        from interp.study_run import zoo_metrics_json
        from interp.train.zoo import build_default_pair

        paths = build_default_pair(seed=args.seed)
        args.teacher, args.student = paths["teacher_debiased"], paths["student_debiased"]
        if not (results / "zoo_metrics.json").exists():
            atomic_write_json(results / "zoo_metrics.json", zoo_metrics_json(paths))
    if args.teacher:
        compute_parts(results, args.teacher, args.student, args.n_pairs, args.seed)
    drawn = draw_figures(results, args.out, prefix=PREFIX)
    for name, paths in drawn.written.items():
        print(f"{name}: {paths[0]}")
    for name, e in drawn.skipped.items():
        print(f"skipped {name}: needs the {e.part!r} part: {e.why}; compute it with `{e.command}`")
    print(f"{len(drawn.written)} figures in {args.out}, {len(drawn.skipped)} skipped")
    return 0 if drawn.written else 1


if __name__ == "__main__":
    sys.exit(main())
