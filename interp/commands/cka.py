"""`interp cka`: teacher x student CKA grids (plus references, statistics and HANS conditions)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from interp.commands._inputs import check_out, load_model, model_info, read_data, require_labels
from interp.commands._options import (
    LAYER_MAP_HELP,
    add_command,
    add_common_options,
    check_layer_map,
    layer_map_arg,
    positive_int,
)
from interp.commands._options import parse_layer_map as parse_opt_layer_map
from interp.errors import UserError


def _layer_map_or_auto(spec: str) -> str | dict[int, int]:
    return spec if spec == "auto" else layer_map_arg(spec)


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "cka", help="CKA grid teacher layers x student layers, with heatmap",
                    description="""
        Capture both models over one data file and compute CKA (centred kernel alignment: 1 = the same
        representation up to rotation and scale) for every teacher layer x student layer, with the layer
        map boxed. Optional: teacher x teacher and student x student reference grids, per-head CKA,
        bootstrap intervals, a permutation null, and grids split by HANS condition. Writes cka.json and
        cka_*.png.""",
                    examples=["interp data hans --n-per-subcase 40 --seed 7 --out runs/hans_40.txt",
                              "interp cka --teacher T --student S --data runs/hans_40.txt --conditions hans "
                              "--references --heads --out runs/cka",
                              "interp cka --teacher T --student S --data nli.jsonl --layer-map 0,2,4 --debiased"])
    p.add_argument("--teacher", required=True, help="teacher checkpoint folder")
    p.add_argument("--student", required=True, help="student checkpoint folder")
    p.add_argument("--data", required=True, help="examples: .jsonl or HANS .txt/.tsv")
    p.add_argument("--out", default="runs/cka", help="output folder (cka.json, cka_*.png)")
    p.add_argument("--pool", choices=("cls", "mean"), default="cls",
                   help="pooling over tokens: cls = the first token, mean = mean over real tokens")
    p.add_argument("--site", choices=("resid_post", "attn_out", "mlp_out"), default="resid_post",
                   help="per-layer site blocks.{l}.hook_<site> (resid_post also includes the embedding)")
    p.add_argument("--kernel", choices=("linear", "rbf"), default="linear",
                   help="linear: exact, streamed; rbf: Gaussian kernel, bandwidth from --threshold")
    p.add_argument("--threshold", type=float, default=0.5, help="RBF bandwidth: sigma = threshold * median distance")
    p.add_argument("--debiased", action="store_true", help="debiased CKA (unbiased HSIC); recommended for small n")
    p.add_argument("--layer-map", type=_layer_map_or_auto, default="auto",
                   help=LAYER_MAP_HELP + "; 'auto': the teacher layers the student was initialised from, else "
                        "DistilBERT's map for 12->6, else evenly spaced")
    p.add_argument("--references", action="store_true", help="also teacher-vs-teacher and student-vs-student grids")
    p.add_argument("--heads", action="store_true", help="per-head CKA (attn.hook_z) for each mapped layer pair")
    p.add_argument("--n-boot", type=int, default=0, help="bootstrap replicates for CIs (linear kernel)")
    p.add_argument("--n-perm", type=int, default=0, help="permutations for a null on the mapped pairs (linear)")
    p.add_argument("--conditions", choices=("none", "hans"), default="none",
                   help="hans: grids on bias-aligned (entailment) vs bias-conflicting (non-entailment) examples "
                        "(the data needs labels)")
    p.add_argument("--max-examples", type=positive_int, default=None, help="use the first N examples only")
    p.add_argument("--batch-size", type=positive_int, default=32, help="examples per forward pass")
    p.add_argument("--max-length", type=positive_int, default=128, help="tokens per example (truncated beyond)")
    p.add_argument("--seed", type=int, default=0, help="random seed (bootstrap, permutations)")
    add_common_options(p)
    p.set_defaults(func=run)


def parse_layer_map(spec: str | dict[int, int], n_teacher: int, n_student: int) -> list[int]:
    """The list of teacher layers for student layers 0..n_student-1, from a --layer-map (either syntax, see
    interp.commands._options.parse_layer_map)."""
    m = spec if isinstance(spec, dict) else parse_opt_layer_map(spec)
    check_layer_map(m, n_teacher, n_student)
    if sorted(m) != list(range(n_student)):
        raise UserError(f"--layer-map {spec}: cka needs a teacher layer for every student layer 0..{n_student - 1}")
    return [m[j] for j in range(n_student)]


def _bias_masks(examples: list[dict]) -> dict[str, np.ndarray]:
    from interp.data.hans import to_binary

    labels = [to_binary(str(ex.get("label", ex.get("gold_label", "")))) for ex in examples]
    ent = np.array([lab == "entailment" for lab in labels])
    # HANS heuristics all predict entailment: aligned = entailment, conflicting = non-entailment
    return {"aligned": ent, "conflicting": ~ent}


def run(args: argparse.Namespace) -> int:
    from interp import cka as C
    from interp import cka_stats as S
    from interp.capture import capture
    from interp.pair import default_layer_map, spaced_layer_map
    from interp.plot.cka import plot_cka_grid, plot_cka_panels

    t_info, s_info = model_info(args.teacher, "teacher"), model_info(args.student, "student")
    out = check_out(args.out)
    examples = read_data(args.data)
    if args.max_examples:
        examples = examples[: args.max_examples]
    if args.conditions == "hans":
        require_labels(examples, args.data, "--conditions hans")
    if args.layer_map != "auto":
        parse_layer_map(args.layer_map, t_info.n_layers, s_info.n_layers)
    teacher = load_model(args.teacher, "teacher", args.device)
    student = load_model(args.student, "student", args.device)
    if args.layer_map == "auto":  # the student's init layers, else DistilBERT's map / evenly spaced
        auto = default_layer_map(teacher, student)
        if auto is None or sorted(auto) != list(range(student.n_layers)):
            auto = spaced_layer_map(teacher.n_layers, student.n_layers)
        lmap = [auto[j] for j in range(student.n_layers)]
    else:
        lmap = parse_layer_map(args.layer_map, teacher.n_layers, student.n_layers)
    out.mkdir(parents=True, exist_ok=True)

    def sites(subj) -> list[str]:
        emb = ["embed"] if args.site == "resid_post" else []
        return emb + [f"blocks.{l}.hook_{args.site}" for l in range(subj.n_layers)]

    def z_sites(layers) -> list[str]:
        return [f"blocks.{l}.attn.hook_z" for l in layers]

    t_sites = sites(teacher) + (z_sites(sorted(set(lmap))) if args.heads else [])
    s_sites = sites(student) + (z_sites(range(student.n_layers)) if args.heads else [])
    kw = dict(pool=args.pool, batch_size=args.batch_size, max_length=args.max_length, seed=args.seed)
    tcap = capture(teacher, examples, t_sites, **kw)
    scap = capture(student, examples, s_sites, **kw)
    if list(tcap.ids) != list(scap.ids):
        raise ValueError("teacher and student captures are not in the same example order")

    # a site that is identical for every example (e.g. the embedding at CLS: same token, same
    # position) has zero variance and CKA with it is undefined: drop it, and say so
    dropped = [f"{who}:{s}" for who, cap, subj in (("teacher", tcap, teacher), ("student", scap, student))
               for s in sites(subj) if bool((cap.acts[s] == cap.acts[s][:1]).all())]
    for d in dropped:
        print(f"note: {d} is constant across examples ({args.pool} pool); left out of the grid")
    xs = {s: tcap.acts[s] for s in sites(teacher) if f"teacher:{s}" not in dropped}  # [n, d_t] each
    ys = {s: scap.acts[s] for s in sites(student) if f"student:{s}" not in dropped}  # [n, d_s] each
    n = len(tcap.ids)

    def label(site: str) -> str:
        return "emb" if site == "embed" else "L" + site.split(".")[1]

    t_lab, s_lab = [label(s) for s in xs], [label(s) for s in ys]
    t_idx, s_idx = {s: i for i, s in enumerate(xs)}, {s: i for i, s in enumerate(ys)}
    pairs = [("embed", "embed")] + [(f"blocks.{t}.hook_{args.site}", f"blocks.{j}.hook_{args.site}")
                                     for j, t in enumerate(lmap)]
    grid_map = {s_idx[b]: t_idx[a] for a, b in pairs if a in t_idx and b in s_idx}  # student -> teacher (grid)
    result: dict = {"n": n, "pool": args.pool, "site": args.site, "kernel": args.kernel, "debiased": args.debiased,
                    "teacher": args.teacher, "student": args.student, "teacher_layers": t_lab,
                    "student_layers": s_lab, "layer_map": lmap, "dropped_constant": dropped}

    if args.kernel == "linear":
        acc = C.CKAAccumulator(self_grids=args.references)
        bs = 4096
        for i in range(0, n, bs):
            acc.update({k: v[i:i + bs] for k, v in xs.items()}, {k: v[i:i + bs] for k, v in ys.items()},
                       ids_x=tcap.ids[i:i + bs], ids_y=scap.ids[i:i + bs])
        grid = acc.result(args.debiased)
        if args.references:
            result["teacher_teacher"] = acc.self_grid("x", args.debiased).tolist()
            result["student_student"] = acc.self_grid("y", args.debiased).tolist()
    else:
        grid = C.rbf_cka_grid(xs, ys, args.threshold, args.debiased)
        if args.references:
            result["teacher_teacher"] = C.rbf_cka_grid(xs, xs, args.threshold, args.debiased).tolist()
            result["student_student"] = C.rbf_cka_grid(ys, ys, args.threshold, args.debiased).tolist()
    result["grid"] = grid.tolist()
    d_t, d_s = teacher.d_model, student.d_model
    result["floor_biased"] = S.cka_floor(n, d_t, d_s)

    if args.n_boot and args.kernel == "linear":
        bt = S.bootstrap_cka(xs, ys, n_boot=args.n_boot, debiased=args.debiased, seed=args.seed)
        result["ci_lo"], result["ci_hi"] = bt["lo"].tolist(), bt["hi"].tolist()
    if args.n_perm and args.kernel == "linear":
        result["permutation"] = {}
        for j, t in grid_map.items():
            pn: dict[str, Any] = S.permutation_null(list(xs.values())[t], list(ys.values())[j], args.n_perm, args.debiased, args.seed)
            result["permutation"][f"{t_lab[t]}-{s_lab[j]}"] = {
                "observed": pn["observed"], "null_mean": float(np.mean(pn["null"])),
                "null_q95": float(np.quantile(pn["null"], 0.95)), "p_value": pn["p_value"]}
    if args.heads:
        result["heads"] = {}
        for j, t in enumerate(lmap):
            hg = C.head_cka_grid(tcap.acts[f"blocks.{t}.attn.hook_z"], scap.acts[f"blocks.{j}.attn.hook_z"],
                                 debiased=args.debiased)
            result["heads"][f"teacher L{t} x student L{j}"] = hg.tolist()
    what = f"{teacher.name} x {student.name}, {Path(args.data).name} (n={n})"
    figs = [plot_cka_grid(grid, t_lab, s_lab, out / "cka_grid.png", grid_map,
                          title=f"{'debiased ' if args.debiased else ''}{args.kernel} CKA, {what}\n"
                                f"{args.site}, {args.pool} pool",
                          floor=None if args.debiased else result["floor_biased"])]
    if args.references:
        figs.append(plot_cka_panels(
            {"teacher x student": grid, "teacher x teacher": np.array(result["teacher_teacher"]),
             "student x student": np.array(result["student_student"])}, t_lab, s_lab, out / "cka_references.png",
            grid_map, row_labels={"teacher x teacher": t_lab, "student x student": s_lab},
            col_labels={"teacher x teacher": t_lab, "student x student": s_lab},
            axis_models={"teacher x teacher": ("teacher", "teacher"), "student x student": ("student", "student")},
            title=f"CKA with references: {what}"))
    if args.conditions == "hans":
        masks = _bias_masks(examples)
        cg: dict[str, Any] = S.condition_grids(xs, ys, masks, debiased=args.debiased, n_boot=args.n_boot, seed=args.seed)
        result["conditions"] = {k: v.tolist() for k, v in cg["grids"].items()}
        result["conditions_n"] = cg["n"]
        result["difference_aligned_minus_conflicting"] = cg["difference"].tolist()
        if "difference_lo" in cg:
            result["difference_ci"] = [cg["difference_lo"].tolist(), cg["difference_hi"].tolist()]
        figs.append(plot_cka_panels(
            {**cg["grids"], "aligned - conflicting": cg["difference"]}, t_lab, s_lab,
            out / "cka_conditions.png", grid_map, diverging=("aligned - conflicting",),
            title=f"CKA by HANS condition (aligned = entailment, conflicting = non-entailment): {what}"))
    (out / "cka.json").write_text(json.dumps(result, indent=1))
    diag = ", ".join(f"{s_lab[j]}<-{t_lab[t]} {grid[t, j]:.3f}" for j, t in grid_map.items())
    print(f"CKA ({args.kernel}{', debiased' if args.debiased else ''}, n={n}); mapped pairs: {diag}")
    if not args.debiased:
        print(f"biased-CKA floor for unrelated data at this n: {result['floor_biased']:.3f}")
    print(f"wrote {out / 'cka.json'} and {', '.join(str(f) for f in figs)}")
    return 0
