"""Vision KD study: does a debiased teacher's robustness survive distillation, and how does temperature move
class-wise accuracy and fairness? (issue 14, item 6; on our offline generated images, `interp.data.vision`)

Study 1, debiasing under KD (Du et al.-style question, at toy scale), for each dataset (coloured digits, 4
classes, colour spurious; Waterbirds-style composites, background spurious) and each pair (ViT d32x3 ->
d16x2, ResNet [16, 32] -> [6, 12]): per seed a teacher trained with ERM and one with group reweighting on
training data whose attribute agrees with the class with probability `strength`; the student distilled from
each (T = `kd_temperature`, `alpha` weights the T^2-scaled KL term) and the student trained alone (ERM).
Study 2, temperature (Mohammadshahi & Ioannou, TMLR 2025), on Trifeature (class = shape, colour spurious):
the ResNet pair's ERM teacher distilled at every temperature, plus the non-distilled student.

Every model is evaluated on a decorrelated test split (attribute independent of the class): accuracy, per-class
and worst-group accuracy, individual fairness (consistency over counterfactual attributes), DPD and EOD across
attribute values (macro over classes, one class vs the rest as the positive prediction). Over the seeds: means
with 95% t-intervals, paired differences, and the Welch counts #SC (classes whose accuracy differs from the
non-distilled student, p < 0.05) and #TC (from the teacher).

Writes to `--out`: models/ (training cache), runs.json (one record per model; resumable, atomic writes),
results.json, results.md (tables and findings) and figures (PNG + SVG).

    python analyses/vision_kd.py            # defaults: an estimated 10-15 min on 2 CPU cores (see DEFAULT)
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

from interp import metrics, provenance  # noqa: E402
from interp.data import vision  # noqa: E402
from interp.train.trainer import TrainConfig, load_trained, predict_logits, train_and_save  # noqa: E402
from interp.train.vision import evaluate_images, group_weights, tiny_resnet, tiny_vit  # noqa: E402


@dataclass(frozen=True)
class Config:
    """Sizes of one run of the study (`DEFAULT`, `QUICK`); every field is part of the cache digest."""

    debias_data: tuple[str, ...] = ("digits", "waterbirds")
    pairs: tuple[str, ...] = ("vit", "resnet")
    seeds: tuple[int, ...] = (0, 1, 2)
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 10.0, 20.0, 40.0)
    kd_temperature: float = 4.0
    alpha: float = 0.9
    strength: float = 0.9
    classes: int = 4            # digits and Trifeature (Waterbirds: 2)
    size: int = 16
    n_train: int = 2000
    n_test: int = 1000
    epochs: float = 8.0
    lr: float = 3e-3            # ResNets
    vit_lr: float = 1e-3        # ViTs (3e-3 is unstable for them with group reweighting)
    batch_size: int = 32

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


# Runtime estimate (measured CPU time of single trainings, one thread, 2000 images x 8 epochs): teachers 4-6 s
# (ResNet) and 7-8 s (ViT), students 3-4 s with KD, evaluation about 1 s per model: about 30 s per (dataset, pair,
# seed) in study 1 (12 of them) and 32 s per seed in study 2, about 8 CPU-minutes in all, 10-15 minutes of wall
# time on 2 idle cores with saving, loading and start-up (not run end to end at these sizes).
DEFAULT = Config()
QUICK = Config(debias_data=("digits",), seeds=(0, 1), temperatures=(1.0, 10.0), n_train=96, n_test=64, epochs=1.0)

MODELS: dict[str, dict[str, Callable[..., Any]]] = {
    "vit": {"teacher": lambda names, seed: tiny_vit(names, d=32, layers=3, heads=4, seed=seed),
            "student": lambda names, seed: tiny_vit(names, d=16, layers=2, heads=2, seed=seed)},
    "resnet": {"teacher": lambda names, seed: tiny_resnet(names, hidden_sizes=(16, 32), seed=seed),
               "student": lambda names, seed: tiny_resnet(names, hidden_sizes=(6, 12), seed=seed)},
}


def dataset(name: str, n: int, split: str, seed: int, cfg: Config) -> vision.ImageSet:
    """Training split: attribute aligned with the class at `cfg.strength`; test split: independent (None)."""
    strength = cfg.strength if split == "train" else None
    if name == "digits":
        return vision.coloured_digits(n, split, strength, seed, size=cfg.size, n_classes=cfg.classes)
    if name == "waterbirds":
        return vision.waterbirds(n, split, strength, seed, size=cfg.size)
    if name == "trifeature":
        return vision.trifeature(n, split, label="shape", spurious="colour", strength=strength, seed=seed,
                                 size=cfg.size, n_values=cfg.classes)
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
           spec: dict, teacher: Path | None = None, temperature: float | None = None,
           weights: np.ndarray | None = None, lr: float = 3e-3) -> Path:
    kw: dict[str, Any] = {"seed": seed, "epochs": cfg.epochs, "lr": lr, "batch_size": cfg.batch_size,
                          "warmup_ratio": 0.05}
    if teacher is not None:
        kw.update(loss="kd", temperature=temperature, alpha=cfg.alpha)
    elif weights is not None:
        kw.update(loss="group_reweight")
    return train_and_save(out / "models" / f"{name}_s{seed}", lambda: (build(), None), train.examples(),
                          TrainConfig(**kw), teacher=teacher, example_weights=weights, progress=False,
                          extra={**spec, "model": name})


def run_seed(cfg: Config, out: Path, runs: Runs, study: str, data: str, pair: str, seed: int,
             log: Callable[[str], None]) -> None:
    """Train (or reuse) and evaluate every model of one (study, dataset, pair, seed)."""
    prefix = f"{cfg.digest()}/{study}/{data}/{pair}"
    train = dataset(data, cfg.n_train, "train", seed, cfg)
    test = dataset(data, cfg.n_test, "test", seed, cfg)
    names = train.label_names
    spec = {"data": data, "classes": len(names), "strength": cfg.strength, "n_train": cfg.n_train, "size": cfg.size}
    teacher_of, student_of = MODELS[pair]["teacher"], MODELS[pair]["student"]
    tag = f"{data}_{pair}"
    plan: list[tuple[str, dict]] = [("teacher_erm", {}), ("student_alone", {})]
    if study == "debias":
        plan += [("teacher_group", {"weights": group_weights(train.groups)}),
                 ("kd_erm", {"teacher": "teacher_erm", "temperature": cfg.kd_temperature}),
                 ("kd_group", {"teacher": "teacher_group", "temperature": cfg.kd_temperature})]
    else:
        plan += [(f"kd_T{T:g}", {"teacher": "teacher_erm", "temperature": T}) for T in cfg.temperatures]
    paths: dict[str, Path] = {}
    for cond, opt in plan:
        key = f"{prefix}/{cond}/seed{seed}"
        build = (lambda: teacher_of(names, seed)) if cond.startswith("teacher") else (lambda: student_of(names, seed))
        t0 = time.perf_counter()
        teacher = paths.get(opt["teacher"]) if "teacher" in opt else None
        paths[cond] = _train(cfg, out, f"{tag}_{cond}", build, train, seed, spec, teacher, opt.get("temperature"),
                             opt.get("weights"), lr=cfg.vit_lr if pair == "vit" else cfg.lr)
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

    for seed in cfg.seeds:
        for data in cfg.debias_data:
            for pair in cfg.pairs:
                run_seed(cfg, out, runs, "debias", data, pair, seed, log)
        run_seed(cfg, out, runs, "temperature", "trifeature", "resnet", seed, log)
    mine = {k: r for k, r in runs.data.items() if k.startswith(cfg.digest() + "/") and r["seed"] in cfg.seeds}
    write_report(cfg, mine, out)
    log(f"wrote {out / 'results.md'}, {out / 'results.json'} and figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
