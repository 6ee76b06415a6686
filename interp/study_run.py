"""Running a study file (`interp.study`): check, plan, run cached steps, write the results folder.

Order: everything checkable without model weights is checked first (`interp.study` and
`interp.study_checks`: keys, values, files, tokenizers, label orders, analyses), then zoo models are
built if the study names any, then the models load and the plan's steps (`interp.study_steps`) run.
Each step is cached in `OUT/steps/<step>.json` with its config (sizes, seed, model fingerprints, a
digest of the data), versions and wall time (`interp.steps`), so a rerun skips finished steps, an
interrupted run resumes, and a changed setting recomputes only the steps whose config holds it. The comparison of a pair (`interp.comparison_run`) keeps its own steps in
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
from pathlib import Path

from interp.errors import UserError
from interp.provenance import atomic_write_bytes, atomic_write_json
from interp.steps import StepCache
from interp.study import ANALYSES, Study
from interp.study_checks import check_data_source, check_folders
from interp.study_steps import STEPS, Context, Step

STEP_HELP = {**ANALYSES, "explorer": "per pair: the offline HTML explorer (explorer.html)"}


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
