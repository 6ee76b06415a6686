"""Vision KD study: does a debiased teacher's robustness survive distillation, and how does temperature move
class-wise accuracy and fairness? (issue 14, item 6; on our offline generated images, `interp.data.vision`)

Study 1, debiasing under KD (Du et al.-style question, at toy scale), for each (dataset, pair) of
`debias_runs` (coloured digits, 4 classes, colour spurious, with a ViT pair d32x3 -> d32x2 and a ResNet pair
[16, 32] -> [12, 24]; Waterbirds-style composites, background spurious, with the ResNet pair): per seed a
teacher trained with ERM and one per debiasing method (`methods`: group reweighting, group DRO, product of
experts with the attribute-only bias model P(class | attribute)) on training data whose attribute agrees
with the class with probability `strength`; the student distilled from each (T = `kd_temperature`, `alpha`
weights the T^2-scaled KL term) and the student trained alone (ERM).
Study 2, temperature (Mohammadshahi & Ioannou, TMLR 2025), on Trifeature (class = shape, colour spurious at
`tri_strength`): a ResNet teacher ([16, 32]) distilled into a LeNet-5-style CNN at every temperature, plus
the non-distilled LeNet.

Every model is evaluated on a decorrelated test split (attribute independent of the class): accuracy, per-class
and worst-group accuracy, individual fairness (consistency over counterfactual attributes), DPD and EOD across
attribute values (macro over classes, one class vs the rest as the positive prediction). Over the seeds: means
with 95% t-intervals, paired differences, and the Welch counts #SC (classes whose accuracy differs from the
non-distilled student, p < 0.05) and #TC (from the teacher).

Writes to `--out`: models/ (training cache), runs.json (one record per model; resumable, atomic writes),
results.json, results.md (tables and findings) and figures (PNG + SVG).

    python analyses/vision_kd.py            # defaults: see the README for the measured runtime
    python analyses/vision_kd.py --quick    # smoke run, well under a minute
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from interp import metrics, provenance  # noqa: E402
from interp.data import vision  # noqa: E402
from interp.train.trainer import TrainConfig, load_trained, predict_logits, train_and_save  # noqa: E402
from interp.train.vision import (  # noqa: E402
    attribute_bias_probs,
    evaluate_images,
    group_weights,
    tiny_lenet,
    tiny_resnet,
    tiny_vit,
)


@dataclass(frozen=True)
class Config:
    """Sizes of one run of the study (`DEFAULT`, `QUICK`); every field is part of the cache digest."""

    debias_runs: tuple[tuple[str, str], ...] = (("digits", "resnet"), ("digits", "vit"), ("waterbirds", "resnet"))
    methods: tuple[str, ...] = ("group", "dro", "poe")
    seeds: tuple[int, ...] = (0, 1, 2)
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 10.0, 20.0, 40.0)
    kd_temperature: float = 4.0
    alpha: float = 0.9
    strength: float = 0.99      # study 1: P(attribute == the class's attribute) in training
    vit_strength: float = 0.98  # study 1, ViT pair (at 0.99 no ViT teacher, debiased or not, reads the digit)
    tri_strength: float = 0.8   # study 2 (Trifeature)
    classes: int = 4            # digits and Trifeature (Waterbirds: 2)
    size: int = 16
    tri_size: int = 24
    n_train: int = 2000
    n_test: int = 1000
    epochs: float = 8.0         # ResNets
    vit_epochs: float = 15.0
    tri_epochs: float = 20.0    # study 2, teacher and students
    lr: float = 3e-3            # ResNets and LeNets
    vit_lr: float = 2e-3
    dro_eta: float = 0.01
    batch_size: int = 32
    vit_teacher: tuple[int, int, int] = (32, 3, 4)   # width, layers, heads (patch 4)
    vit_student: tuple[int, int, int] = (32, 2, 4)
    resnet_teacher: tuple[int, ...] = (16, 32)       # channels per stage, one basic block each
    resnet_student: tuple[int, ...] = (12, 24)
    lenet_student: tuple[int, int, int, int, int] = (6, 16, 2, 60, 40)  # conv channels, pooled size, fc widths

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


DEFAULT = Config()
QUICK = Config(debias_runs=(("digits", "resnet"), ("digits", "vit")), seeds=(0, 1), temperatures=(1.0, 10.0),
               n_train=96, n_test=64, epochs=1.0, vit_epochs=1.0, tri_epochs=1.0, size=16, tri_size=16)

Builder = Callable[[tuple[str, ...], int, int], Any]  # (label names, seed, image size) -> model


def models(cfg: Config) -> dict[str, dict[str, Builder]]:
    """Per pair, the teacher and student builders at the configured sizes."""
    def vit(spec: tuple[int, int, int]) -> Builder:
        return lambda names, seed, size: tiny_vit(names, size, d=spec[0], layers=spec[1], heads=spec[2], seed=seed)

    def resnet(channels: tuple[int, ...]) -> Builder:
        return lambda names, seed, size: tiny_resnet(names, hidden_sizes=channels, depths=(1,) * len(channels),
                                                     seed=seed)

    c1, c2, pool, f1, f2 = cfg.lenet_student
    return {"vit": {"teacher": vit(cfg.vit_teacher), "student": vit(cfg.vit_student)},
            "resnet": {"teacher": resnet(cfg.resnet_teacher), "student": resnet(cfg.resnet_student)},
            "resnet-lenet": {"teacher": resnet(cfg.resnet_teacher),
                             "student": lambda names, seed, size: tiny_lenet(names, channels=(c1, c2), pool_size=pool,
                                                                            fc=(f1, f2), seed=seed)}}


METHOD_LOSS = {"group": "group_reweight", "dro": "group_dro", "poe": "poe"}


def train_strength(cfg: Config, data: str, pair: str) -> float:
    """P(attribute == the class's attribute) in the training split of (data, pair)."""
    return cfg.tri_strength if data == "trifeature" else cfg.vit_strength if pair == "vit" else cfg.strength


def dataset(name: str, n: int, split: str, seed: int, cfg: Config, strength: float | None = None) -> vision.ImageSet:
    """Training split: attribute aligned with the class at `strength`; test split: independent (None)."""
    strength = strength if split == "train" else None
    if name == "digits":
        return vision.coloured_digits(n, split, strength, seed, size=cfg.size, n_classes=cfg.classes)
    if name == "waterbirds":
        return vision.waterbirds(n, split, strength, seed, size=cfg.size)
    if name == "trifeature":
        return vision.trifeature(n, split, label="shape", spurious="colour", strength=strength, seed=seed,
                                 size=cfg.tri_size, n_values=cfg.classes)
    raise ValueError(f"unknown dataset {name!r}")


def macro_fairness(y: np.ndarray, pred: np.ndarray, attrs: np.ndarray, n_classes: int) -> dict[str, float]:
    """DPD and EOD across attribute values, one class vs the rest as the positive prediction, averaged over
    classes (with two classes: the mean of the two one-vs-rest values)."""
    dpd = [metrics.demographic_parity_difference(pred, attrs, positive=c) for c in range(n_classes)]
    eod = [metrics.equalized_odds_difference(y, pred, attrs, positive=c) for c in range(n_classes)]
    return {"dpd": float(np.mean(dpd)), "eod": float(np.mean(eod))}


def evaluate(model: Any, test: vision.ImageSet) -> dict[str, Any]:
    """evaluate_images' numbers, with individual fairness flattened and macro DPD / EOD."""
    out = evaluate_images(model, test)
    pred = predict_logits(model, None, test.examples()).argmax(-1).numpy()  # [n]
    out.pop("dpd", None)
    out.pop("eod", None)
    out.update(macro_fairness(test.labels.numpy(), pred, test.attributes.numpy(), len(test.label_names)))
    out["consistency"] = float(out["individual_fairness"]["consistency"])
    return out


class Runs:
    """runs.json: one record per trained model, rewritten atomically after each (a killed run resumes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}

    def add(self, key: str, record: dict) -> None:
        self.data[key] = record
        provenance.atomic_write_json(self.path, self.data)


def _train(cfg: Config, out: Path, name: str, build: Callable[[], Any], train: vision.ImageSet, seed: int,
           spec: dict, epochs: float, lr: float, teacher: Path | None = None, temperature: float | None = None,
           method: str | None = None) -> Path:
    kw: dict[str, Any] = {"seed": seed, "epochs": epochs, "lr": lr, "batch_size": cfg.batch_size, "warmup_ratio": 0.05}
    weights = bias = None
    if teacher is not None:
        kw.update(loss="kd", temperature=temperature, alpha=cfg.alpha)
    elif method is not None:
        kw.update(loss=METHOD_LOSS[method])
        if method == "group":
            weights = group_weights(train.groups)
        elif method == "dro":
            kw.update(dro_eta=cfg.dro_eta)
        elif method == "poe":  # the attribute-only bias model, counted on the training set
            bias = attribute_bias_probs(train.labels.numpy(), train.attributes.numpy(), len(train.label_names))
    return train_and_save(out / "models" / cfg.digest() / f"{name}_s{seed}", lambda: (build(), None), train.examples(),
                          TrainConfig(**kw), teacher=teacher, example_weights=weights, bias_probs=bias,
                          progress=False, extra={**spec, "model": name})


def plan_of(cfg: Config, study: str) -> list[tuple[str, dict]]:
    """(condition, options) in training order: teachers before the students distilled from them."""
    plan: list[tuple[str, dict]] = [("teacher_erm", {}), ("student_alone", {})]
    if study == "debias":
        plan += [(f"teacher_{m}", {"method": m}) for m in cfg.methods]
        plan += [(f"kd_{t}", {"teacher": f"teacher_{t}", "temperature": cfg.kd_temperature})
                 for t in ("erm", *cfg.methods)]
    else:
        plan += [(f"kd_T{T:g}", {"teacher": "teacher_erm", "temperature": T}) for T in cfg.temperatures]
    return plan


def run_seed(cfg: Config, out: Path, runs: Runs, study: str, data: str, pair: str, seed: int,
             log: Callable[[str], None]) -> None:
    """Train (or reuse) and evaluate every model of one (study, dataset, pair, seed)."""
    prefix = f"{cfg.digest()}/{study}/{data}/{pair}"
    strength = train_strength(cfg, data, pair)
    train = dataset(data, cfg.n_train, "train", seed, cfg, strength)
    test = dataset(data, cfg.n_test, "test", seed, cfg)
    names = train.label_names
    size = cfg.tri_size if data == "trifeature" else cfg.size
    spec = {"data": data, "classes": len(names), "strength": strength, "n_train": cfg.n_train, "size": size}
    teacher_of, student_of = models(cfg)[pair]["teacher"], models(cfg)[pair]["student"]
    epochs = cfg.tri_epochs if data == "trifeature" else cfg.vit_epochs if pair == "vit" else cfg.epochs
    lr = cfg.vit_lr if pair == "vit" else cfg.lr
    paths: dict[str, Path] = {}
    for cond, opt in plan_of(cfg, study):
        key = f"{prefix}/{cond}/seed{seed}"
        build = (lambda: teacher_of(names, seed, size)) if cond.startswith("teacher") else \
            (lambda: student_of(names, seed, size))
        t0 = time.perf_counter()
        teacher = paths.get(opt["teacher"]) if "teacher" in opt else None
        paths[cond] = _train(cfg, out, f"{data}_{pair}_{cond}", build, train, seed, spec, epochs, lr, teacher,
                             opt.get("temperature"), opt.get("method"))
        if key in runs.data:
            continue
        model, _, _ = load_trained(paths[cond])
        m = evaluate(model, test)
        runs.add(key, {"study": study, "data": data, "pair": pair, "condition": cond, "seed": seed,
                       "temperature": opt.get("temperature"), "path": str(paths[cond]), "metrics": m})
        log(f"{study} {data} {pair} {cond} seed {seed}: acc {m['accuracy']:.3f} worst-group "
            f"{m['worst_group_accuracy']:.3f} consistency {m['consistency']:.3f} ({time.perf_counter() - t0:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    from vision_kd_report import write_report

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/vision_kd")
    ap.add_argument("--quick", action="store_true", help="smoke configuration (digits only, 2 seeds, tiny data)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--temperatures", type=float, nargs="+", default=None)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--epochs", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else DEFAULT
    over = {k: v for k, v in (("seeds", a.seeds), ("temperatures", a.temperatures), ("n_train", a.n_train),
                              ("epochs", a.epochs)) if v is not None}
    cfg = replace(cfg, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in over.items()})
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = Runs(out / "runs.json")
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    for seed in tqdm(cfg.seeds, desc="seeds", disable=None):
        for data, pair in cfg.debias_runs:
            run_seed(cfg, out, runs, "debias", data, pair, seed, log)
        run_seed(cfg, out, runs, "temperature", "trifeature", "resnet-lenet", seed, log)
    mine = {k: r for k, r in runs.data.items() if k.startswith(cfg.digest() + "/") and r["seed"] in cfg.seeds}
    write_report(cfg, mine, out)
    log(f"wrote {out / 'results.md'}, {out / 'results.json'} and figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
