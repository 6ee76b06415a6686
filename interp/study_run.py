"""Running a study file (`interp.study`): check, plan, run cached steps, write the results folder.

Order: everything checkable without model weights is checked first (`interp.study`: keys, values,
files, tokenizers, label orders, analyses), then zoo models are built if the study names any, then the
models load and the plan's steps run. Each step is cached in `OUT/steps/<step>.json` with its config
(sizes, seed, model fingerprints, a digest of the data), versions and wall time (`interp.steps`), so a
rerun skips finished steps, an interrupted run resumes, and a changed setting recomputes only the steps
whose config holds it. The comparison of a pair (`interp.comparison_run`) keeps its own steps in
`OUT/<pair>/steps/`, with the same cache.

Results folder:
    study.toml, study.json        the study as given and as resolved (model folders, defaults filled in)
    results.json, tables.md       every analysis' numbers with provenance; the same as tables
    summary.md                    the short summary printed at the end
    report.html                   `interp report` of the folder (tables, figures, provenance)
    cka_<pair>.png, patching_<pair>.png/.svg
    <pair>/                       the comparison (results.json, tables.md, figures), models.json (the
                                  pair's folders and explorer settings), explorer.html, report.html
    steps/, steps.log             the step cache and the log of steps run or reused
"""
from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp.errors import UserError
from interp.provenance import atomic_write_bytes, atomic_write_json
from interp.steps import StepCache, digest, read_log
from interp.study import ANALYSES, PairSpec, Study, check_data_source, check_folders

STEP_HELP = {**ANALYSES, "explorer": "per pair: the offline HTML explorer (explorer.html)"}


@dataclass(frozen=True)
class Step:
    """One planned step: `analysis` run on `target` (a model name or a pair name)."""

    name: str
    analysis: str
    target: str


def plan(study: Study) -> list[Step]:
    """The steps of a study, in the order they run: per model (hans, patching, circuits), then per pair
    (cka, compare, explorer)."""
    steps = []
    for analysis in ("hans", "patching", "circuits"):
        if analysis in study.analyses:
            steps += [Step(f"{analysis}.{m}", analysis, m) for m in study.model_names()]
    for p in study.pairs:
        wanted = study.pair_analyses(p)
        steps += [Step(f"{a}.{p.name}", a, p.name) for a in ("cka", "compare") if a in wanted]
        if study.explorer:
            steps.append(Step(f"explorer.{p.name}", "explorer", p.name))
    return steps


# --- data ----------------------------------------------------------------------------------------------
def load_examples(study: Study) -> list[dict]:
    """The study's examples as HANS-style dicts (id, premise, hypothesis, binary label, heuristic, subcase,
    template); a data file without what the analyses need is a UserError naming `data.source`."""
    from interp.commands._inputs import read_data, read_hans
    from interp.data.hans import to_binary

    where = f"{study.where()}: data.source ="
    if study.data_source == "generate":
        from interp.data.hans_gen import generate_hans

        examples = generate_hans(study.n_per_subcase, seed=study.data_seed)
    elif Path(study.data_source).suffix in (".txt", ".tsv"):
        examples = read_hans(study.data_source, option=where)
    else:
        examples = read_data(study.data_source, option=where)
        for i, ex in enumerate(examples, 1):
            lab = ex.get("label", ex.get("gold_label"))
            try:
                ex["label"] = to_binary(str(lab))
            except ValueError:
                raise UserError(f"{where} {study.data_source}: example {i} has label {lab!r}; every example needs "
                                "entailment, non-entailment, neutral or contradiction") from None
            if "premise" not in ex:
                raise UserError(f"{where} {study.data_source}: example {i} has no premise/hypothesis (NLI pairs)")
            for k in ("heuristic", "subcase", "template"):
                ex[k] = str(ex.get(k, "all"))
    labels = {ex["label"] for ex in examples}
    if labels != {"entailment", "non-entailment"}:
        raise UserError(f"{where} {study.data_source}: needs both labels, entailment (bias-aligned) and "
                        f"non-entailment (bias-conflicting); found {', '.join(sorted(labels))}")
    return examples


def sample_even(examples: Sequence[dict], n: int | None, seed: int) -> list[dict]:
    """At most `n` examples, spread evenly over subcases (round robin over shuffled subcases), seeded;
    all of them (in order) when n is None or not smaller."""
    if n is None or n >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    by_sub: dict[str, list[dict]] = {}
    for ex in examples:
        by_sub.setdefault(ex["subcase"], []).append(ex)
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_sub.items())]
    out: list[dict] = []
    i = 0
    while len(out) < n:
        out += [p[i] for p in pools if i < len(p)][: n - len(out)]
        i += 1
    return out


def _example_key(examples: Sequence[dict]) -> str:
    return digest([[e["id"], e["premise"], e["hypothesis"], e["label"], e["subcase"]] for e in examples])


# --- models --------------------------------------------------------------------------------------------
def zoo_table(metrics: dict[str, dict]) -> str:
    """Markdown table of the zoo models' accuracies in % (the README's unit)."""
    def pct(v: object) -> str:
        return f"{100 * v:.1f}" if isinstance(v, (int, float)) else "?"

    lines = ["| model | in-distribution acc (%) | HANS entailment (%) | HANS non-entailment (%) | spurious gap |",
             "|---|---|---|---|---|"]
    for name, m in metrics.items():
        lines.append(f"| {name} | " + " | ".join(pct(m.get(k)) for k in
                                                  ("id_acc", "hans_ent", "hans_non_ent", "spurious_gap")) + " |")
    return "\n".join(lines)


def zoo_metrics_json(paths: dict[str, str]) -> dict:
    """The four zoo models' metrics and the HANS examples per subcase they were scored on."""
    models = {}
    per_subcase = None
    for k in ("teacher_erm", "student_erm", "teacher_debiased", "student_debiased"):
        rec = json.loads((Path(paths[k]) / "train_config.json").read_text())
        models[k] = rec["metrics"]
        per_subcase = ((rec.get("config") or {}).get("zoo") or {}).get("hans_per_subcase", per_subcase)
    return {"models": models, "hans_per_subcase": per_subcase}


def resolve_models(study: Study, out: Path, echo: Callable[[str], None]) -> dict[str, str]:
    """Model name -> checkpoint folder; `zoo:` models are built (or reused from the cache) first."""
    paths = {m: study.models[m] for m in study.model_names()}
    if any(v.startswith("zoo:") for v in paths.values()):
        from interp.train import zoo

        echo(f"building (or reusing) the built-in zoo, seed {study.seed} ...")
        built = zoo.build_default_pair(seed=study.seed)
        table = zoo_table({k: zoo.read_metrics(built[k]) for k in zoo.PAIR_KEYS})
        echo(table)
        atomic_write_bytes(out / "zoo_metrics.md", (table + f"\n\nzoo folder: {built['root']}\n").encode())
        atomic_write_json(out / "zoo_metrics.json", zoo_metrics_json(built))  # `interp figures`: HANS bars
        paths = {m: built[v[4:]] if v.startswith("zoo:") else v for m, v in paths.items()}
    return paths


# --- the steps -----------------------------------------------------------------------------------------
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


def _seeded(seed: int, fn: Callable[[], Any]) -> Callable[[], Any]:
    """`fn` after seeding every global generator: a step's value does not depend on what ran before it."""
    def run() -> Any:
        import torch

        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        return fn()
    return run


def predict(subject: Any, examples: Sequence[dict], batch_size: int, max_length: int,
            progress: bool = True) -> list[str]:
    """The predicted label name of every example."""
    from interp.progress import bar

    labels = subject.labels
    out: list[str] = []
    with bar(total=len(examples), desc=f"predict {subject.name}", unit="ex", disable=not progress) as b:
        for i in range(0, len(examples), batch_size):
            chunk = examples[i:i + batch_size]
            logits, _ = subject.run(chunk, max_length=max_length)  # [batch, n_labels]
            out += [labels[j] for j in logits.argmax(-1).tolist()]
            b.update(len(chunk))
    return out


def step_hans(ctx: Context, step: Step) -> Any:
    from interp.data.hans import score_hans, to_binary

    m = step.target
    config = {"model": ctx.fp(m), "data": _example_key(ctx.eval_examples), "batch-size": ctx.size("batch-size"),
              "max-length": ctx.size("max-length")}

    def compute() -> dict:
        preds = predict(ctx.subjects[m], ctx.eval_examples, ctx.size("batch-size"), ctx.size("max-length"),
                        ctx.progress)
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


def _layer_map(ctx: Context, p: PairSpec) -> dict[int, int] | None:
    from interp.pair import default_layer_map

    return p.layer_map or default_layer_map(ctx.subjects[p.teacher], ctx.subjects[p.student])


def step_cka(ctx: Context, step: Step) -> Any:
    from interp.capture import capture
    from interp.cka import cka_grid
    from interp.cka_stats import condition_grids

    p = ctx.pair(step.target)
    t, s = ctx.subjects[p.teacher], ctx.subjects[p.student]
    o = ctx.study.options
    config = {"teacher": ctx.fp(p.teacher), "student": ctx.fp(p.student), "data": _example_key(ctx.eval_examples),
              "pool": o["pool"], "debiased": o["debiased"], "n-boot": ctx.size("n-boot"), "seed": ctx.study.seed,
              "batch-size": ctx.size("batch-size"), "max-length": ctx.size("max-length")}

    def compute() -> dict:
        kw = dict(pool=o["pool"], batch_size=ctx.size("batch-size"), max_length=ctx.size("max-length"),
                  seed=ctx.study.seed, progress=ctx.progress)
        caps = {role: capture(m, ctx.eval_examples, ["embed", *m.expand("blocks.*.hook_resid_post")], **kw)
                for role, m in (("teacher", t), ("student", s))}
        # a site identical for every example (the embedding at [CLS]) has no variance: CKA is undefined there
        acts: dict[str, dict[str, Any]] = {}
        dropped: list[str] = []
        for role, cap in caps.items():
            acts[role] = {}
            for site, v in cap.acts.items():  # [n, d]
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


# --- the run -------------------------------------------------------------------------------------------
def prepare(study: Study, out: str | Path, echo: Callable[[str], None] = print,
            build_zoo: bool = True) -> tuple[list[dict], dict[str, str]]:
    """Every check that needs no model weights, then the zoo (if named and `build_zoo`): (examples, model
    folders; `zoo:<name>` where not built). Raises UserError before any computation on a mistake in the
    study file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; give a folder")
    check_data_source(study)
    examples = load_examples(study)
    static = {m: v for m, v in study.models.items() if not v.startswith("zoo:") and m in study.model_names()}
    if static:  # folders the study names directly: checked before the zoo is built (minutes)
        sub = Study(**{**study.__dict__, "pairs": [p for p in study.pairs if all(
            x is None or x in static for x in (p.teacher, p.student, p.reference))]})
        check_folders(sub, static)
    if not build_zoo:
        return examples, {m: study.models[m] for m in study.model_names()}
    out.mkdir(parents=True, exist_ok=True)
    paths = resolve_models(study, out, echo)
    check_folders(study, paths)
    return examples, paths


def run_study(study: Study, out: str | Path, progress: bool = True, echo: Callable[[str], None] = print) -> dict:
    """Run `study` into the folder `out` (see the module doc); returns the results (as results.json's)."""
    from interp.subject import load_subject

    out = Path(out)
    examples, paths = prepare(study, out, echo)
    if study.path is not None:
        shutil.copyfile(study.path, out / "study.toml") if study.path.resolve() != (out / "study.toml").resolve() else None
    atomic_write_json(out / "study.json", {**study.to_json(), "model_folders": paths})
    subjects = {}
    for m in study.model_names():
        try:
            subjects[m] = load_subject(paths[m], name=m, device=study.device)
        except (ValueError, TypeError, OSError, RuntimeError) as e:
            raise UserError(f"{study.where()}: models.{m} = {paths[m]}: cannot be loaded: {e}") from e
    steps = plan(study)
    width = len(str(len(steps)))

    def on_event(name: str, status: str, seconds: float) -> None:
        (ctx.ran if status == "ran" else ctx.cached).append(name)
        what = "done" if status == "ran" else "cached, skipped"
        echo(f"    {name}: {what}" + (f" in {seconds:.1f} s" if status == "ran" else ""))

    ctx = Context(study, out, examples, sample_even(examples, study.sizes["n-eval"], study.seed), paths, subjects,
                  StepCache(out, on_event), echo, progress)
    for p in study.pairs:
        atomic_write_json(out / p.name / "models.json", {
            "teacher": paths[p.teacher], "student": paths[p.student], "teacher_name": p.teacher,
            "student_name": p.student,
            "reference": paths[p.reference] if p.reference else None, "n_examples": ctx.size("n-examples"),
            "n_pairs": ctx.size("n-pairs"), "seed": study.seed, "pairs": ctx.size("pairs"), "device": study.device})
    echo(f"study {study.name!r}: {len(steps)} steps -> {out}")
    for i, step in enumerate(steps, 1):
        echo(f"[{i:>{width}}/{len(steps)}] {step.name}: {STEP_HELP[step.analysis]}")
        ctx.values[step.name] = STEPS[step.analysis](ctx, step)
    from interp.study_report import write_outputs

    return write_outputs(ctx)
