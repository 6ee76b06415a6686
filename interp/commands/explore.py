"""`interp explore`: one self-contained HTML explorer of a teacher/student pair and its results folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from interp.commands._options import add_command, add_common_options, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "explore", help="interactive offline HTML explorer: circuits side by side, attention, CKA, "
                    "patching maps, degradation ranking",
                    description="""
                    Write one self-contained HTML file (no network: data and scripts inlined) that shows the
                    teacher's and the student's circuits side by side on a layer x head grid, linked through
                    the head map, with attention patterns, CKA, patching maps and the degradation ranking.
                    Parts the results folder lacks are computed from --teacher/--student, or named with the
                    command that computes them.""",
                    examples=["interp explore runs/demo/debiased_pair          # a study's pair folder: nothing else needed",
                              "interp explore runs/compare --teacher T --student S",
                              "interp explore --teacher T --student S --n-examples 10 --no-circuits --out x.html"])
    p.add_argument("results", nargs="?", help="an `interp compare` results folder (optional with --teacher/--student), "
                                              "or a pair folder of `interp run` (models and settings read from it)")
    p.add_argument("--teacher", help="teacher checkpoint folder (to compute attention, CKA, patching, circuits)")
    p.add_argument("--student", help="student checkpoint folder")
    p.add_argument("--out", help="HTML file to write (default: RESULTS/explorer.html, else explorer.html)")
    p.add_argument("--n-examples", type=positive_int, default=None,
                   help="HANS examples in the example picker (default: the study's, else 30)")
    p.add_argument("--n-pairs", type=positive_int, default=None,
                   help="clean/corrupted HANS pairs for patching and circuits (default: the study's, else 32)")
    p.add_argument("--no-circuits", action="store_true", help="skip edge-level circuit discovery")
    p.add_argument("--seed", type=int, default=None, help="seed of the HANS sample (default: the study's, else 0)")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.errors import UserError
    from interp.explore import explore

    if args.results is None and not (args.teacher and args.student):
        raise UserError("give a results folder, or --teacher and --student (or both).")
    if args.results is not None:
        args.results = str(study_pair_folder(Path(args.results)))
    saved = _study_models(Path(args.results)) if args.results and not (args.teacher or args.student) else {}
    pairs = None
    if saved:
        from interp.contrast import hans_pairs
        from interp.subject import load_subject

        args.teacher = load_subject(saved["teacher"], name=saved.get("teacher_name", "teacher"), device=args.device)
        args.student = load_subject(saved["student"], name=saved.get("student_name", "student"), device=args.device)
        kind = str(saved.get("pairs", "hans:break_overlap")).split(":", 1)[1]
        n_pairs = args.n_pairs or saved.get("n_pairs", 32)
        pairs = hans_pairs(n_pairs, kind=kind, seed=saved.get("seed", 0) if args.seed is None else args.seed,
                           tokenizer=args.teacher.tokenizer)
    n_examples = args.n_examples or saved.get("n_examples", 30)
    n_pairs = args.n_pairs or saved.get("n_pairs", 32)
    seed = args.seed if args.seed is not None else saved.get("seed", 0)
    out = args.out or (str(Path(args.results) / "explorer.html") if args.results else "explorer.html")
    view = explore(args.teacher, args.student, out=out, results=args.results, n_examples=n_examples,
                   n_pairs=n_pairs, seed=seed, device=args.device, circuits=not args.no_circuits, pairs=pairs)
    missing = ", ".join(view.data["missing"]) or "none"
    print(f"explorer -> {out} ({len(view.html) / 1e6:.2f} MB; missing parts: {missing})")
    if view.data["patching"]:  # the same maps as a figure for papers: shared limits, layer 0 on top
        import numpy as np

        from interp.plot.heads import head_maps

        p = view.data["patching"]
        maps = {role: np.array(p[role]["scores"], dtype=float) for role in ("teacher", "student")}
        label = "raw metric change" if any(p[r]["no_signal"] for r in maps) else "share of the clean - corrupted gap"
        paths = head_maps(maps, Path(out).with_name(Path(out).stem + "_patching_maps"), label=label,
                          title="activation patching, layer x head")
        print("figures -> " + ", ".join(str(x) for x in paths))
    return 0


def study_pair_folder(folder: Path) -> Path:
    """The folder itself, or the one pair folder of an `interp run` results folder (several: an error
    naming them)."""
    import json

    from interp.errors import UserError

    study = folder / "study.json"
    if not study.exists() or (folder / "models.json").exists():
        return folder
    names = [p["name"] for p in json.loads(study.read_text()).get("pairs", [])]
    if len(names) == 1:
        return folder / names[0]
    raise UserError(f"{folder} is a study with {len(names)} pairs; explore one of them: "
                    + ", ".join(f"interp explore {folder / n}" for n in names))


def _study_models(folder: Path) -> dict:
    """The model folders and explorer settings `interp run` recorded in a pair folder (models.json), when
    the folders still exist; {} otherwise."""
    import json

    path = folder / "models.json"
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    if not all(Path(saved.get(k) or "").is_dir() for k in ("teacher", "student")):
        print(f"note: {path} names model folders that no longer exist; showing what the results hold")
        return {}
    return saved
