"""Study files: one TOML file (read with Python's `tomllib`) describes a whole teacher-vs-student study,
and `interp run study.toml --out DIR` runs it (`interp.study_run`).

    [study]
    name = "BERT-base vs DistilBERT on HANS"
    seed = 0                                   # sampling, bootstrap, the zoo's seed for zoo: models
    device = "auto"
    analyses = ["hans", "cka", "patching", "circuits", "compare", "reference"]   # default: all that apply

    [models]                                   # name = checkpoint folder (relative to this file) or zoo:<name>
    teacher = "models/bert-base-mnli"
    student = "models/distilbert-mnli"

    [data]
    source = "heuristics_evaluation_set.txt"   # "generate" (our HANS generator), a HANS .txt/.tsv, a .jsonl
    n-per-subcase = 100                        # generate only
    seed = 1000                                # generate only

    [sizes]                                    # n, n-pairs, n-examples, n-eval, n-boot, batch-size, max-length
    n = 120

    [options]                                  # pool, debiased, faithfulness, pairs
    pool = "mean"

    [[pair]]
    name = "main"
    teacher = "teacher"
    student = "student"
    reference = "student_nokd"                 # optional: a student of the same architecture
    layer-map = "0,2,4,7,9,11"                 # optional: as --layer-map

Keys are the command-line options' names (`--n-pairs` is `n-pairs`; `n_pairs` is accepted too) with
the same meaning and checks (`interp.commands._options.VOCAB`). Everything checkable
without loading a model's weights is checked before a run, each mistake one `UserError` naming the key
and the fix: keys, values and analyses against the pairs here, folders (config.json, tokenizers, label
orders, layer maps) and the data file in `interp.study_checks`.
"""
from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp.commands._options import VOCAB
from interp.errors import UserError

ANALYSES: dict[str, str] = {
    "hans": "every model's HANS accuracy per heuristic x label and per subcase, and its spurious gap",
    "cka": "per pair: CKA grid (teacher layers x student layers) on bias-aligned (HANS entailment) and "
           "bias-conflicting (non-entailment) inputs, and their difference",
    "patching": "per model: activation patching of every head on clean/corrupted HANS pairs",
    "circuits": "per model: edge-level circuit (attribution patching), pruned to `faithfulness`",
    "compare": "per pair: head map, head-by-head effects, cross-model activation patching (total and direct "
               "effects) and weight patching against the teacher",
    "reference": "per pair: weight and activation patching against the pair's reference student (needs "
                 "`reference`; implies compare)",
}
ZOO_MODELS = ("teacher_erm", "teacher_debiased", "student_erm", "student_debiased")
SIZES = ("n", "n-pairs", "n-examples", "n-eval", "n-boot", "batch-size", "max-length")
OPTIONS = ("pool", "debiased", "faithfulness", "pairs")
DEFAULTS: dict[str, Any] = {"n": 120, "n-pairs": 32, "n-examples": 30, "n-eval": None, "n-boot": 0,
                            "batch-size": 32, "max-length": 128, "pool": "cls", "debiased": True,
                            "faithfulness": 0.8, "pairs": "hans:break_overlap"}
HELP: dict[str, str] = {**{k: v.help for k, v in VOCAB.items()},
                        "n-eval": "examples for HANS metrics and CKA, sampled evenly over subcases from the seed "
                                  "(default: all)"}
_KEYS = {"study": ("name", "seed", "device", "analyses", "explorer", "report"),
         "data": ("source", "n-per-subcase", "seed"), "sizes": SIZES, "options": OPTIONS,
         "pair": ("name", "teacher", "student", "reference", "layer-map")}
_TABLE_HELP = {"study": "name, seed, device, analyses, explorer, report", "models": "name = folder or zoo:<name>",
               "data": "source, n-per-subcase, seed", "sizes": ", ".join(SIZES), "options": ", ".join(OPTIONS),
               "pair": "name, teacher, student, reference, layer-map ([[pair]], one per pair)"}


@dataclass(frozen=True)
class PairSpec:
    """One teacher/student pair of the study; models are keys of `Study.models`."""

    name: str
    teacher: str
    student: str
    reference: str | None = None
    layer_map: dict[int, int] | None = None


@dataclass
class Study:
    """A parsed study file. `models`: name -> absolute folder or `zoo:<name>`; `data_source`: "generate"
    or an absolute file; `sizes` / `options`: every key of SIZES / OPTIONS, defaults filled in."""

    name: str
    models: dict[str, str]
    pairs: list[PairSpec]
    analyses: tuple[str, ...]
    seed: int = 0
    device: str = "auto"
    data_source: str = "generate"
    n_per_subcase: int = 100
    data_seed: int = 1000
    sizes: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    explorer: bool = True
    report: bool = True
    path: Path | None = None
    text: str = ""
    raw: dict = field(default_factory=dict)

    def where(self) -> str:
        return self.path.name if self.path is not None else "study"

    def pair_analyses(self, pair: PairSpec) -> list[str]:
        """The analyses run for `pair` (reference only where the pair has one and it is wanted)."""
        out = [a for a in self.analyses if a != "reference" or pair.reference is not None]
        if "reference" in out and "compare" not in out:
            out.append("compare")
        return out

    def model_names(self) -> list[str]:
        """Every model a pair uses, in first-use order."""
        seen: list[str] = []
        for p in self.pairs:
            for m in (p.teacher, p.student, p.reference):
                if m is not None and m not in seen:
                    seen.append(m)
        return seen

    def to_json(self) -> dict:
        """The resolved study (what the results folder records)."""
        return {"name": self.name, "models": self.models, "analyses": list(self.analyses), "seed": self.seed,
                "device": self.device, "data": {"source": self.data_source, "n-per-subcase": self.n_per_subcase,
                                                "seed": self.data_seed},
                "sizes": self.sizes, "options": self.options, "explorer": self.explorer, "report": self.report,
                "pairs": [{"name": p.name, "teacher": p.teacher, "student": p.student, "reference": p.reference,
                           "layer_map": {str(k): v for k, v in p.layer_map.items()} if p.layer_map else None}
                          for p in self.pairs]}


# --- reading -------------------------------------------------------------------------------------------
def shipped_studies() -> dict[str, Path]:
    """Study files shipped with the package (`interp/studies/*.toml`), by name."""
    folder = Path(__file__).resolve().parent / "studies"
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def find_study(spec: str) -> Path:
    """A study file path, or the name of a shipped study (`default`)."""
    p = Path(spec)
    if p.is_file():
        return p
    shipped = shipped_studies()
    if spec in shipped:
        return shipped[spec]
    if p.exists():
        raise UserError(f"{spec}: is a folder; give a study file (.toml)")
    raise UserError(f"{spec}: no such study file (give a .toml file, or one of the shipped studies: "
                    f"{', '.join(shipped) or 'none'})")


def _override_value(text: str) -> Any:
    """A --set value as TOML (numbers, true/false, "strings", [lists]); anything else is a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`table.key=value` settings (`--set sizes.n=12`) applied to the parsed TOML; `pair.NAME.key=value`
    sets a key of one [[pair]]."""
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UserError(f"--set {item!r}: expected table.key=value (e.g. sizes.n=12, study.device=cpu, "
                            "pair.main.reference=student_erm)")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if parts[0] == "pair":
            if len(parts) != 3:
                raise UserError(f"--set {item!r}: a pair's key is pair.<name>.<key>")
            match = [p for p in raw.get("pair", []) if isinstance(p, dict) and p.get("name") == parts[1]]
            if not match:
                names = [p.get("name") for p in raw.get("pair", []) if isinstance(p, dict)]
                raise UserError(f"--set {item!r}: no [[pair]] named {parts[1]!r} (pairs: {names})")
            match[0][parts[2]] = _override_value(value.strip())
        elif len(parts) == 2:
            table = raw.setdefault(parts[0], {})
            if not isinstance(table, dict):
                raise UserError(f"--set {item!r}: {parts[0]} is not a table")
            table[parts[1]] = _override_value(value.strip())
        else:
            raise UserError(f"--set {item!r}: expected table.key=value")
    return raw


def load_study(path: str | Path, overrides: list[str] | None = None) -> Study:
    """Parse and check a study file (see the module doc); relative paths are relative to its folder."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path.name}: not valid TOML ({e})") from None
    raw = apply_overrides(raw, overrides or [])
    return parse_study(raw, path, text)


def _unknown(where: str, table: str, key: str, known: tuple[str, ...] | list[str]) -> UserError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return UserError(f"{where}: unknown key `{key}` in [{table}]: {hint}known keys: {', '.join(known)}")


def _table(raw: dict, where: str, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise UserError(f"{where}: `{name}` must be a table ([{name}]: {_TABLE_HELP[name]})")
    out = {}
    for k, v in value.items():
        nk = k.replace("_", "-")
        if nk not in keys:
            raise _unknown(where, name, k, keys)
        if nk in out:
            raise UserError(f"{where}: [{name}] sets `{nk}` twice (as {nk} and {k}); keep one")
        out[nk] = v
    return out


def _check(where: str, key: str, value: Any, check=None) -> Any:
    try:
        return (check or VOCAB[key.split(".")[-1]].check)(value)
    except ValueError as e:
        raise UserError(f"{where}: {key} = {value!r}: {e}") from None


def _string(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value.strip()


def _n_eval(v: Any) -> int | None:
    from interp.commands._options import _at_least

    return _at_least(1)(v)


def parse_study(raw: dict, path: Path | None = None, text: str = "") -> Study:
    """The typed study of a parsed TOML dict; every key and value checked (files are checked by `interp.study_checks`)."""
    where = path.name if path is not None else "study"
    base = path.resolve().parent if path is not None else Path.cwd()
    for top in raw:
        if top not in (*_KEYS, "models"):
            raise _unknown(where, "top level", top, [*_KEYS, "models"])
    st = _table(raw, where, "study", _KEYS["study"])
    data = _table(raw, where, "data", _KEYS["data"])
    sizes = {**{k: DEFAULTS[k] for k in SIZES}, **_table(raw, where, "sizes", SIZES)}
    opts = {**{k: DEFAULTS[k] for k in OPTIONS}, **_table(raw, where, "options", OPTIONS)}
    for k in SIZES:
        if sizes[k] is not None:
            sizes[k] = _check(where, f"sizes.{k}", sizes[k], _n_eval if k == "n-eval" else None)
    for k in OPTIONS:
        opts[k] = _check(where, f"options.{k}", opts[k])

    models_raw = raw.get("models")
    if not isinstance(models_raw, dict) or not models_raw:
        raise UserError(f"{where}: no [models] table: add one with name = \"checkpoint folder\" lines (or "
                        f"zoo:<name>, one of {', '.join(ZOO_MODELS)})")
    models: dict[str, str] = {}
    for name, value in models_raw.items():
        value = _string(where, f"models.{name}", value)
        if value.startswith("zoo:"):
            if value[4:] not in ZOO_MODELS:
                raise UserError(f"{where}: models.{name} = {value!r}: the built-in zoo has "
                                f"{', '.join('zoo:' + m for m in ZOO_MODELS)}")
            models[name] = value
        else:
            models[name] = str((base / Path(value).expanduser()).resolve())

    pairs_raw = raw.get("pair")
    if not isinstance(pairs_raw, list) or not pairs_raw:
        raise UserError(f"{where}: no [[pair]]: add one per teacher/student pair, with name, teacher and student "
                        "(names from [models])")
    pairs: list[PairSpec] = []
    for i, pr in enumerate(pairs_raw):
        if not isinstance(pr, dict):
            raise UserError(f"{where}: [[pair]] number {i + 1} must be a table")
        p = _table({"pair": pr}, where, "pair", _KEYS["pair"])
        label = f"[[pair]] {p.get('name', i + 1)!r}"
        for k in ("name", "teacher", "student"):
            if k not in p:
                raise UserError(f"{where}: {label} has no `{k}`" + (
                    " (a folder name for its results, e.g. name = \"main\")" if k == "name" else
                    f" (one of the models: {', '.join(models)})"))
        name = _string(where, f"{label} name", p["name"])
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise UserError(f"{where}: {label} name: use letters, digits, _ . - (it names the pair's results folder)")
        if name in {q.name for q in pairs}:
            raise UserError(f"{where}: two [[pair]] tables are named {name!r}; names must differ")
        for k in ("teacher", "student", "reference"):
            if k in p and p[k] not in models:
                raise UserError(f"{where}: {label} {k} = {p[k]!r} is not in [models] (models: {', '.join(models)}); "
                                f"add it there as {p[k]} = \"checkpoint folder\"")
        if p["teacher"] == p["student"]:
            raise UserError(f"{where}: {label}: teacher and student are the same model {p['teacher']!r}")
        lmap = _check(where, f"{label} layer-map", p["layer-map"], VOCAB["layer-map"].check) if "layer-map" in p else None
        pairs.append(PairSpec(name, p["teacher"], p["student"], p.get("reference"), lmap))

    analyses = st.get("analyses")
    if analyses is None:
        analyses = [a for a in ANALYSES if a != "reference" or any(p.reference for p in pairs)]
        explicit = False
    else:
        explicit = True
        if not isinstance(analyses, list) or not all(isinstance(a, str) for a in analyses):
            raise UserError(f"{where}: study.analyses must be a list of names ({', '.join(ANALYSES)})")
        for a in analyses:
            if a not in ANALYSES:
                close = difflib.get_close_matches(a, list(ANALYSES), n=1)
                raise UserError(f"{where}: study.analyses: unknown analysis {a!r}: "
                                + (f"did you mean {close[0]!r}? " if close else "") + f"known: {', '.join(ANALYSES)}")
    if explicit and "reference" in analyses:
        missing = [p.name for p in pairs if p.reference is None]
        if missing:
            raise UserError(f"{where}: study.analyses has \"reference\" but [[pair]] {', '.join(map(repr, missing))} "
                            "has no reference student: add reference = \"<model>\" to the pair (a student of the "
                            "student's architecture, e.g. the no-KD student) or remove \"reference\" from analyses")
    source = data.get("source", "generate")
    source = _string(where, "data.source", source)
    if source != "generate":
        if not data.keys() <= {"source"}:
            extra = sorted(set(data) - {"source"})
            raise UserError(f"{where}: data.{extra[0]} applies to source = \"generate\" only; remove it or "
                            "generate the data")
        source = str((base / Path(source).expanduser()).resolve())
    study = Study(name=str(st.get("name", path.stem if path is not None else "study")), models=models, pairs=pairs,
                  analyses=tuple(dict.fromkeys(analyses)), seed=_check(where, "study.seed", st.get("seed", 0)),
                  device=_check(where, "study.device", st.get("device", "auto")), data_source=source,
                  n_per_subcase=_check(where, "data.n-per-subcase", data.get("n-per-subcase", 100)),
                  data_seed=_check(where, "data.seed", data.get("seed", 1000)), sizes=sizes, options=opts,
                  explorer=_check(where, "study.explorer", st.get("explorer", True), VOCAB["debiased"].check),
                  report=_check(where, "study.report", st.get("report", True), VOCAB["debiased"].check),
                  path=path, text=text, raw=raw)
    return study
