"""How we know the attributions are right: every attribution method on organisms with planted damage.

Three organisms from interp.organisms (tiny random BERTs, nothing trained, answers exact):
  skip1  student from teacher layers [0, 2, 4], heads 1.1 (value x0) and 1.3 (value x0.5) damaged
  skip2  student from teacher layers [0, 2, 4], heads 0.2 (x0) and 2.1 (x0.5) damaged (two layers)
  same2  same-depth 3-layer copy, heads 0.1 and 2.3 killed (two layers)
For each, against the teacher and against the undamaged student: the exact undo-one share of every
damaged head (the student with only that head repaired, full forward), weight patching, and
activation patching (source z into the student) with its total and direct effects. Writes a
markdown table to stdout and runs/organisms/organisms.md.

    .venv/bin/python analyses/organisms.py [--n 64]
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    import numpy as np
    import torch

    from interp.compare import entailment_margin, restoration
    from interp.cross_patch import cross_patch
    from interp.organisms import damaged_student, tiny_bert, tiny_pairs
    from interp.pair import HeadMap, Pair
    from interp.subject import load_subject
    from interp.weight_patching import weight_patch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="random input pairs per organism")
    ap.add_argument("--out", default="runs/organisms")
    args = ap.parse_args()
    torch.set_num_threads(1)
    organisms = {
        "skip1": damaged_student(layers=[0, 2, 4], damage={(1, 1): 0.0, (1, 3): 0.5}),
        "skip2": damaged_student(layers=[0, 2, 4], damage={(0, 2): 0.0, (2, 1): 0.5}),
        "same2": damaged_student(tiny_bert(3, seed=2, scale=3.0, head_scale=30.0), layers=None,
                                 damage={(0, 1): 0.0, (2, 3): 0.0}),
    }
    lines = ["| organism | source | gap (source - student) | component | undo-one | weight | activation total | "
             "activation direct |", "|---|---|---|---|---|---|---|---|"]
    for name, org in organisms.items():
        student = load_subject(org.student, tokenizer=org.tokenizer, name="student")
        data = tiny_pairs(args.n, seed=1)
        batch = student.tokenize(data)
        margin = entailment_margin(student.labels)
        with torch.no_grad():
            m_s = float(margin(org.student(**batch).logits).double().mean())
        for src_name, src_model in (("teacher", org.teacher), ("undamaged", org.reference)):
            source = load_subject(src_model, tokenizer=org.tokenizer, name=src_name)
            with torch.no_grad():
                m_t = float(margin(src_model(**batch).logits).double().mean())
                undo = {h: (float(margin(org.repaired(h)(**batch).logits).double().mean()) - m_s) / (m_t - m_s)
                        for h in org.damaged}
            w = {r["component"]: r for r in restoration(weight_patch(student, source, data, progress=False), margin)}
            heads = [(l, h) for l in range(student.n_layers) for h in range(student.n_heads)]
            t_layers = org.layer_map if src_name == "teacher" else {l: l for l in range(student.n_layers)}
            hm = HeadMap({k: (t_layers[k[0]], k[1]) for k in heads}, {k: 1.0 for k in heads},
                         np.eye(len(heads)), np.eye(len(heads)))
            act = cross_patch(Pair(source, student, t_layers, hm), data, progress=False, direct=True)
            tot = {r["component"]: r for r in restoration(act, margin)}
            dr = {r["component"]: r for r in restoration({**act, "patched": act["patched_direct"]}, margin)}
            gap = next(iter(w.values()))
            gap_s = f"{gap['gap_teacher_minus_student']:+.3f} [{gap['gap_ci95'][0]:+.3f}, {gap['gap_ci95'][1]:+.3f}]"
            head_rows = [k for k in w if k.startswith("head")]
            top_undamaged = max((k for k in head_rows if tuple(map(int, k.split(" ")[1].split("<")[0].split(".")))
                                 not in org.damaged), key=lambda k: abs(tot[k]["restored"]))
            shown = [f"head {l}.{h}<-T{t_layers[l]}.{h}" for l, h in org.damaged] + [top_undamaged]
            for k in shown:
                key = tuple(map(int, k.split(" ")[1].split("<")[0].split(".")))
                u = f"{undo[key]:+.4f}" if key in undo else "0 (undamaged)"
                lines.append(f"| {name} | {src_name} | {gap_s} | {k} | {u} | {w[k]['restored']:+.4f} | "
                             f"{tot[k]['restored']:+.4f} | {dr[k]['restored']:+.4f} |")
                gap_s = ""
            max_undamaged_w = max(abs(w[k]["restored"]) for k in head_rows if k not in shown[:-1])
            lines.append(f"| {name} | {src_name} | | every undamaged head (max abs) | 0 | {max_undamaged_w:.1e} | | |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "organisms.md").write_text(text)


if __name__ == "__main__":
    main()
