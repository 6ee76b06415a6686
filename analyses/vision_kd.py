"""Vision KD study (skeleton): does a debiased teacher's fairness survive distillation into a smaller student?

The image half of issue 14, on our offline data (`interp.data.vision`): per seed, a ResNet teacher trained
with ERM and one with group reweighting on training data whose spurious attribute predicts the class at
`--strength`; a smaller student (ResNet or ViT, `--student`) distilled from each at every temperature, and
the same student trained without a teacher. Every model is evaluated on a decorrelated test split
(`interp.train.vision.evaluate_images`: accuracy, per-class and worst-group accuracy, individual
fairness over counterfactual attributes, DPD/EOD for two classes), teacher-student CKA at the stage
outputs, and, with two or more seeds, the classes whose accuracy differs (Welch) between distilled
students and the non-distilled student / the teacher. Models are cached under `--out/models`.

    python analyses/vision_kd.py --quick                     # tiny smoke run (about a minute on a CPU)
    python analyses/vision_kd.py --data waterbirds --seeds 0 1 2 --temperatures 1 2 4 10 20 40
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from interp import capture, cka_grid, load_subject, metrics  # noqa: E402
from interp.arch import stage_sites  # noqa: E402
from interp.data import vision  # noqa: E402
from interp.train.trainer import TrainConfig, load_trained, train_and_save  # noqa: E402
from interp.train.vision import evaluate_images, group_weights, tiny_resnet, tiny_vit  # noqa: E402

DATA = {"digits": lambda n, split, strength, seed, a: vision.coloured_digits(n, split, strength, seed, n_classes=a.classes),
        "trifeature": lambda n, split, strength, seed, a: vision.trifeature(n, split, strength=strength, seed=seed,
                                                                             size=16, n_values=a.classes),
        "waterbirds": lambda n, split, strength, seed, a: vision.waterbirds(n, split, strength, seed, size=16)}


def one_seed(a: argparse.Namespace, seed: int, out: Path, base: TrainConfig) -> dict[str, dict]:
    """Train (or reuse) every model of one seed and evaluate it on the decorrelated test split."""
    runs: dict[str, dict] = {}
    train = DATA[a.data](a.n_train, "train", a.strength, seed, a)
    test = DATA[a.data](a.n_test, "test", None, seed, a)
    names = train.label_names
    spec = {"data": a.data, "classes": len(names), "strength": a.strength, "n_train": a.n_train}

    def student() -> tuple:
        return (tiny_vit(names, image_size=train.images.shape[-1], seed=seed) if a.student == "vit"
                else tiny_resnet(names, hidden_sizes=(4, 8), seed=seed)), None

    def fit(name: str, build, cfg: TrainConfig, **kw) -> Path:
        return train_and_save(out / "models" / f"{name}_s{seed}", build, train.examples(), cfg,
                              extra={**spec, "model": name}, **kw)

    teachers = {
        "teacher_erm": fit("teacher_erm", lambda: (tiny_resnet(names, hidden_sizes=(16, 32), seed=seed), None),
                           TrainConfig(**{**base.to_dict(), "seed": seed})),
        "teacher_group": fit("teacher_group", lambda: (tiny_resnet(names, hidden_sizes=(16, 32), seed=seed), None),
                             TrainConfig(**{**base.to_dict(), "seed": seed, "loss": "group_reweight"}),
                             example_weights=group_weights(train.groups)),
    }
    paths = dict(teachers)
    paths["student_alone"] = fit(f"student_{a.student}_alone", student, TrainConfig(**{**base.to_dict(), "seed": seed}))
    for tname, tpath in teachers.items():
        for T in a.temperatures:
            cfg = TrainConfig(**{**base.to_dict(), "seed": seed, "loss": "kd", "temperature": T, "alpha": a.alpha})
            paths[f"kd_{tname}_T{T:g}"] = fit(f"student_{a.student}_kd_{tname}_T{T:g}", student, cfg, teacher=tpath)
    caps = {}
    for name, path in paths.items():
        model, _, _ = load_trained(path)
        runs[name] = evaluate_images(model, test)
        subject = load_subject(model, device="cpu", name=name)
        sites = stage_sites(model, subject.arch) if subject.arch.family == "resnet" else "blocks.*.hook_resid_post"
        caps[name] = capture(subject, test.examples(), sites, progress=False)
    for name in paths:
        if name.startswith("kd_"):
            teacher = "teacher_group" if "teacher_group" in name else "teacher_erm"
            runs[name]["cka_to_teacher"] = cka_grid(caps[teacher], caps[name]).grid.tolist()
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=sorted(DATA), default="digits")
    ap.add_argument("--classes", type=int, default=4, help="classes of digits / trifeature (waterbirds: 2)")
    ap.add_argument("--strength", type=float, default=0.9, help="P(attribute aligned with class) in training")
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 4.0, 10.0])
    ap.add_argument("--alpha", type=float, default=0.9, help="weight of the T^2-scaled KL term")
    ap.add_argument("--student", choices=["resnet", "vit"], default="resnet")
    ap.add_argument("--epochs", type=float, default=6.0)
    ap.add_argument("--out", default="runs/vision_kd")
    ap.add_argument("--quick", action="store_true", help="smoke configuration: 2 seeds, 1 temperature, small data")
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds, a.temperatures, a.n_train, a.n_test, a.epochs = [0, 1], [4.0], 400, 300, 3.0
    out = Path(a.out)
    base = TrainConfig(epochs=a.epochs, lr=3e-3, batch_size=32, warmup_ratio=0.05)
    runs: dict[str, dict] = {}
    for seed in a.seeds:
        for name, result in one_seed(a, seed, out, base).items():
            runs.setdefault(name, {})[seed] = result
    summary = {}
    for name, by_seed in runs.items():
        vals = list(by_seed.values())
        summary[name] = {k: float(np.mean([v[k] for v in vals])) for k in ("accuracy", "worst_group_accuracy")}
        summary[name]["consistency"] = float(np.mean([v["individual_fairness"]["consistency"] for v in vals]))
        if len(a.seeds) >= 2 and name.startswith("kd_"):
            per_class = {n: np.array([runs[n][s]["per_class_accuracy"] for s in a.seeds])
                         for n in (name, "student_alone", "teacher_group" if "teacher_group" in name else "teacher_erm")}
            t = "teacher_group" if "teacher_group" in name else "teacher_erm"
            diff = metrics.count_differing_classes(per_class[name], per_class["student_alone"], per_class[t])
            summary[name].update(classes_differing_from_student=diff["vs_student"],
                                 classes_differing_from_teacher=diff["vs_teacher"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"config": vars(a), "summary": summary, "runs": runs}, indent=1,
                                                 default=str) + "\n")
    width = max(len(n) for n in summary)
    print(f"{'model':<{width}}  accuracy  worst-group  consistency")
    for name, s in summary.items():
        print(f"{name:<{width}}  {s['accuracy']:8.3f}  {s['worst_group_accuracy']:11.3f}  {s['consistency']:11.3f}")
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
