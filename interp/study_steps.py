"""The steps of a study run (`interp.study_run`): one function per analysis, each cached with its config.

A step is one analysis on one target (a model or a pair). `STEPS` maps an analysis name to its function
`(Context, Step) -> value`; each function builds its config (model fingerprints, sizes, seed, a digest of
the data) and runs its computation through the step cache (`interp.steps`) after seeding every global
generator, so a value does not depend on what ran before it.
"""
from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp.steps import StepCache, digest, read_log
from interp.study import PairSpec, Study


@dataclass(frozen=True)
class Step:
    """One planned step: `analysis` run on `target` (a model name or a pair name)."""

    name: str
    analysis: str
    target: str


def _example_key(examples: Sequence[dict]) -> str:
    """A digest of the examples (what a step's config records of its data)."""
    return digest([[e["id"], e["premise"], e["hypothesis"], e["label"], e["subcase"]] for e in examples])


@dataclass
class Context:
    """What the steps share: the study, its folders, data, loaded models and the step cache."""

    study: Study
    out: Path
    examples: list[dict]
    eval_examples: list[dict]
    paths: dict[str, str]
    subjects: dict[str, Any]
    cache: StepCache
    echo: Callable[[str], None]
    progress: bool = True
    values: dict[str, Any] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)      # steps computed in this run (pair steps as pair/step)
    cached: list[str] = field(default_factory=list)   # steps read from the cache

    def size(self, key: str) -> Any:
        return self.study.sizes[key] if key in self.study.sizes else self.study.options[key]

    def fp(self, model: str) -> str:
        return self.subjects[model].fingerprint

    def pair(self, name: str) -> PairSpec:
        return next(p for p in self.study.pairs if p.name == name)

    def contrast_pairs(self, model: str) -> tuple[list[dict], list[dict]]:
        """The clean/corrupted HANS pairs of patching and circuits (word pieces matched to `model`'s tokenizer)."""
        from interp.contrast import hans_pairs

        key = f"pairs:{model}"
        if key not in self.values:
            self.values[key] = hans_pairs(self.size("n-pairs"), kind=self.size("pairs").split(":", 1)[1],
                                          seed=self.study.seed, tokenizer=self.subjects[model].tokenizer)
        return self.values[key]


    def forward(self, model: str) -> Any:
        """One pass of `model` over the evaluation examples, kept for this run: a Capture of the logits and
        the pooled embedding and layer outputs, read by the HANS step (predictions) and the CKA step, so the
        examples go through each model once."""
        from interp.capture import capture

        key = f"forward:{model}"
        if key not in self.values:
            m = self.subjects[model]
            self.values[key] = capture(m, self.eval_examples, ["embed", *m.expand("blocks.*.hook_resid_post"), "logits"],
                                       pool=self.study.options["pool"], batch_size=self.size("batch-size"),
                                       max_length=self.size("max-length"), seed=self.study.seed, progress=self.progress)
        return self.values[key]


def _seeded(seed: int, fn: Callable[[], Any]) -> Callable[[], Any]:
    """`fn` after seeding every global generator: a step's value does not depend on what ran before it."""
    def run() -> Any:
        import torch

        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        return fn()
    return run


def step_hans(ctx: Context, step: Step) -> Any:
    from interp.data.hans import score_hans, to_binary

    m = step.target
    config = {"model": ctx.fp(m), "data": _example_key(ctx.eval_examples), "batch-size": ctx.size("batch-size"),
              "max-length": ctx.size("max-length")}

    def compute() -> dict:
        labels = ctx.subjects[m].labels
        preds = [labels[j] for j in ctx.forward(m).acts["logits"].argmax(-1).tolist()]
        scores = score_hans(ctx.eval_examples, preds)
        return {"scores": scores, "spurious_gap": spurious_gap(scores),
                "correct": [int(to_binary(p) == e["label"]) for p, e in zip(preds, ctx.eval_examples)]}
    return ctx.cache.run(step.name, config, _seeded(ctx.study.seed, compute))


def spurious_gap(scores: dict) -> float | None:
    """Entailment minus non-entailment accuracy, averaged over the heuristics that have both labels
    (interp.metrics.spurious_gap on those)."""
    from interp.metrics import spurious_gap as gap

    cells = {h: c for h, c in scores["by_heuristic_label"].items() if {"entailment", "non-entailment"} <= set(c)}
    return gap({"by_heuristic_label": cells}) if cells else None


def step_patching(ctx: Context, step: Step) -> Any:
    from interp.contrast import make_contrast
    from interp.patching import patch

    m = step.target
    config = {"model": ctx.fp(m), "n-pairs": ctx.size("n-pairs"), "pairs": ctx.size("pairs"), "seed": ctx.study.seed,
              "batch-size": ctx.size("batch-size"), "max-length": ctx.size("max-length")}

    def compute() -> dict:
        subject = ctx.subjects[m]
        contrast = make_contrast(subject, *ctx.contrast_pairs(m), max_length=ctx.size("max-length"))
        r = patch(subject, contrast, "head", batch_size=ctx.size("batch-size"), allow_no_signal=True,
                  progress=ctx.progress)
        return {"scores": r.scores.tolist(), "raw": r.raw.tolist(), "clean_metric": r.clean_metric,
                "corrupt_metric": r.corrupt_metric, "signal": r.signal, "no_signal": r.no_signal,
                "n_pairs": len(contrast), "unit": "raw metric change (no signal)" if r.no_signal else
                "share of the clean - corrupted gap"}
    return ctx.cache.run(step.name, config, _seeded(ctx.study.seed, compute))


def step_circuits(ctx: Context, step: Step) -> Any:
    from interp.circuits import discover
    from interp.contrast import make_contrast

    m = step.target
    config = {"model": ctx.fp(m), "n-pairs": ctx.size("n-pairs"), "pairs": ctx.size("pairs"), "seed": ctx.study.seed,
              "faithfulness": ctx.size("faithfulness"), "batch-size": ctx.size("batch-size"),
              "max-length": ctx.size("max-length")}

    def compute() -> dict:
        subject = ctx.subjects[m]
        contrast = make_contrast(subject, *ctx.contrast_pairs(m), max_length=ctx.size("max-length"))
        c = discover(subject, contrast, level="edge", method="atp", target=ctx.size("faithfulness"),
                     batch_size=ctx.size("batch-size"), allow_no_signal=True)
        return json.loads(c.to_json())
    return ctx.cache.run(step.name, config, _seeded(ctx.study.seed, compute))


def step_cka(ctx: Context, step: Step) -> Any:
    from interp.cka import cka_grid
    from interp.cka_stats import condition_grids

    p = ctx.pair(step.target)
    o = ctx.study.options
    config = {"teacher": ctx.fp(p.teacher), "student": ctx.fp(p.student), "data": _example_key(ctx.eval_examples),
              "pool": o["pool"], "debiased": o["debiased"], "n-boot": ctx.size("n-boot"), "seed": ctx.study.seed,
              "batch-size": ctx.size("batch-size"), "max-length": ctx.size("max-length")}

    def compute() -> dict:
        caps = {"teacher": ctx.forward(p.teacher), "student": ctx.forward(p.student)}
        # a site identical for every example (the embedding at [CLS]) has no variance: CKA is undefined there
        acts: dict[str, dict[str, Any]] = {}
        dropped: list[str] = []
        for role, cap in caps.items():
            acts[role] = {}
            for site, v in cap.acts.items():  # [n, d]
                if site == "logits":
                    continue
                if bool((v == v[:1]).all()):
                    dropped.append(f"{role}:{site}")
                else:
                    acts[role]["emb" if site == "embed" else "L" + site.split(".")[1]] = v
        xs, ys = acts["teacher"], acts["student"]
        ent = np.array([e["label"] == "entailment" for e in ctx.eval_examples])
        cg: dict[str, Any] = condition_grids(xs, ys, {"aligned": ent, "conflicting": ~ent}, debiased=o["debiased"],
                             n_boot=ctx.size("n-boot"), seed=ctx.study.seed)
        out = {"teacher_layers": list(xs), "student_layers": list(ys), "dropped_constant": dropped,
               "grid": np.asarray(cka_grid(xs, ys, debiased=o["debiased"]).grid).tolist(),
               "aligned": np.asarray(cg["grids"]["aligned"]).tolist(),
               "conflicting": np.asarray(cg["grids"]["conflicting"]).tolist(),
               "difference": np.asarray(cg["difference"]).tolist(), "n": cg["n"], "debiased": o["debiased"],
               "pool": o["pool"], "site": "hook_resid_post (and the embedding)"}
        if "difference_lo" in cg:
            out["difference_ci95"] = [np.asarray(cg["difference_lo"]).tolist(), np.asarray(cg["difference_hi"]).tolist()]
        return out
    return ctx.cache.run(step.name, config, _seeded(ctx.study.seed, compute))


def step_compare(ctx: Context, step: Step) -> Any:
    """The pair's comparison (`run_comparison`, its own step cache in OUT/<pair>/steps)."""
    from interp.comparison_run import run_comparison

    p = ctx.pair(step.target)
    folder = ctx.out / p.name
    ref = ctx.subjects[p.reference] if p.reference and "reference" in ctx.study.pair_analyses(p) else None
    before = len(read_log(folder))
    res = run_comparison(ctx.subjects[p.teacher], ctx.subjects[p.student], ctx.examples, folder, n=ctx.size("n"),
                         seed=ctx.study.seed, layer_map=p.layer_map, reference=ref, progress=ctx.progress,
                         device=ctx.study.device)
    for e in read_log(folder)[before:]:
        (ctx.ran if e["status"] == "ran" else ctx.cached).append(f"{p.name}/{e['step']}")
        ctx.echo(f"    {p.name}/{e['step']}: {e['status']}" + (f" ({e['seconds']:.1f} s)" if e["status"] == "ran" else ""))
    return res


def step_explorer(ctx: Context, step: Step) -> Any:
    """explorer.html of the pair, from its comparison folder and the models; the study's circuits are
    handed to it through its cache (`<pair>/explore/circuit_<role>.json`)."""
    from interp.circuits import Circuit
    from interp.explore import explore

    p = ctx.pair(step.target)
    folder = ctx.out / p.name
    results = folder if (folder / "results.json").exists() else None
    circuits = "circuits" in ctx.study.analyses
    for role, m in (("teacher", p.teacher), ("student", p.student)):
        if circuits and f"circuits.{m}" in ctx.values:
            Circuit.from_json(json.dumps(ctx.values[f"circuits.{m}"])).to_json(folder / "explore" / f"circuit_{role}.json")
    res = json.loads((folder / "results.json").read_text())["results"] if results else None
    config = {"teacher": ctx.fp(p.teacher), "student": ctx.fp(p.student), "results": digest(res),
              "n-examples": ctx.size("n-examples"), "n-pairs": ctx.size("n-pairs"), "pairs": ctx.size("pairs"),
              "seed": ctx.study.seed, "circuits": circuits}

    def compute() -> dict:
        view = explore(ctx.subjects[p.teacher], ctx.subjects[p.student], out=folder / "explorer.html", results=results,
                       n_examples=ctx.size("n-examples"), n_pairs=ctx.size("n-pairs"), seed=ctx.study.seed,
                       device=ctx.study.device, circuits=circuits, pairs=ctx.contrast_pairs(p.teacher))
        return {"file": "explorer.html", "missing": sorted(view.data["missing"])}
    return ctx.cache.run(step.name, config, _seeded(ctx.study.seed, compute), outputs=[folder / "explorer.html"])


STEPS: dict[str, Callable[[Context, Step], Any]] = {
    "hans": step_hans, "patching": step_patching, "circuits": step_circuits, "cka": step_cka,
    "compare": step_compare, "explorer": step_explorer}
