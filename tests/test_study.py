"""Study files and `interp run`: foreign checkpoints + an official-layout HANS file run every analysis
(numbers checked against independent references); an interrupted run resumes to identical results
without redoing finished steps; a changed setting recomputes only what depends on it; mistakes in the
file fail before any computation, naming the key and the fix; the shipped default study."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


# --- fixtures: checkpoints the zoo did not build, an official-layout HANS file ----------------------------
def _scaled(model: torch.nn.Module) -> torch.nn.Module:
    """Larger random weights (as interp.organisms.save_tiny_pair): effects well above float rounding."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.mul_(30.0 if ("classifier" in name or "pooler" in name) else 3.0)
    return model.eval()


def _save_foreign(root: Path, labels: dict[int, str] | None = None, tokenizer=None) -> dict[str, str]:
    """A random BERT teacher (4 layers), a random DistilBERT student (2 layers) and a second DistilBERT as
    the reference, each saved with save_pretrained and a tokenizer."""
    import transformers as T

    from interp.organisms import NLI_LABELS, hans_tokenizer

    tok = tokenizer or hans_tokenizer()
    labels = labels or NLI_LABELS
    kw = dict(vocab_size=len(tok.vocab), num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()},
              attn_implementation="eager", max_position_embeddings=64)
    out = {}
    torch.manual_seed(0)
    models = {"bert": T.BertForSequenceClassification(T.BertConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64, **kw))}
    for name, seed in (("distil", 1), ("distil_ref", 2)):
        torch.manual_seed(seed)
        models[name] = T.DistilBertForSequenceClassification(T.DistilBertConfig(
            dim=32, n_layers=2, n_heads=4, hidden_dim=64, **kw))
    for name, m in models.items():
        _scaled(m).save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = str(root / name)
    return out


def _official_hans(path: Path, n_per_subcase: int = 3, seed: int = 0) -> list[dict]:
    """Our generator's examples in the official file's layout: exactly its 11 tab-separated columns."""
    from interp.data.hans import HANS_COLUMNS
    from interp.data.hans_gen import generate_hans

    exs = generate_hans(n_per_subcase, seed=seed)
    rows = ["\t".join(HANS_COLUMNS)] + ["\t".join([
        e["label"], e["premise_binary_parse"], e["hypothesis_binary_parse"], e["premise_parse"],
        e["hypothesis_parse"], e["premise"], e["hypothesis"], e["id"], e["heuristic"], e["subcase"], e["template"]])
        for e in exs]
    path.write_text("\n".join(rows) + "\n")
    return exs


FOREIGN_STUDY = """
[study]
name = "foreign checkpoints"
seed = 0
device = "cpu"
analyses = ["hans", "cka", "patching", "circuits", "compare", "reference"]

[models]
bert = "models/bert"
distil = "models/distil"
distil_ref = "models/distil_ref"

[data]
source = "hans_official.txt"

[sizes]
n = 12
n-pairs = 8
n-examples = 4
n-boot = 20

[options]
pool = "cls"
debiased = true

[[pair]]
name = "main"
teacher = "bert"
student = "distil"
reference = "distil_ref"
"""


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("foreign")
    _save_foreign(root / "models")
    _official_hans(root / "hans_official.txt")
    (root / "study.toml").write_text(FOREIGN_STUDY)
    return root


def _debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA by the textbook formula (unbiased HSIC, Song et al. 2012), float64."""
    def hsic1(k: np.ndarray, l: np.ndarray) -> float:
        n = k.shape[0]
        k, l = k.copy(), l.copy()
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l, 0)
        one = np.ones(n)
        return float((np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
                      - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3)))
    k, l = x @ x.T, y @ y.T
    return hsic1(k, l) / np.sqrt(hsic1(k, k) * hsic1(l, l))


def test_foreign_checkpoints_and_official_hans_file_run_every_analysis(foreign, capsys):
    """A random BERT and a random DistilBERT (save_pretrained + tokenizer) on a HANS file in the official
    column layout: every analysis runs, and the HANS metrics and CKA grid equal independent references
    computed from the raw HuggingFace models."""
    import transformers as T

    from interp.data.hans import load_hans

    out = foreign / "out"
    assert main(["run", str(foreign / "study.toml"), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    for step in ("hans.bert", "hans.distil", "hans.distil_ref", "patching.bert", "patching.distil_ref",
                 "circuits.distil", "cka.main", "explorer.main"):
        assert (out / "steps" / f"{step}.json").exists(), step
    for step in ("head_map", "head_by_head", "cross_patch", "weight_reference", "cross_patch_reference"):
        assert (out / "main" / "steps" / f"{step}.json").exists(), step
    for f in ("results.json", "tables.md", "report.html", "summary.md", "cka_main.png", "patching_main.svg",
              "main/explorer.html", "main/report.html", "main/tables.md", "study.toml", "study.json"):
        assert (out / f).exists(), f
    assert "distillation changed it by" in printed and f"open {out / 'report.html'}" in printed
    res = json.loads((out / "results.json").read_text())
    r = res["results"]
    pair = json.loads((out / "main" / "results.json").read_text())["results"]
    assert "skipped" in pair["attribution"]["weight_teacher"]  # BERT -> DistilBERT: no parameter counterparts
    assert pair["attribution"]["reference"]["weight"]["margin"] and pair["attribution"]["margin_direct"]
    assert np.asarray(r["patching"]["distil"]["raw"]).shape == (2, 4)
    assert r["circuits"]["bert"]["metadata"]["n_candidates"] > 0

    # HANS metrics: the raw HF model, one example at a time, scored by hand
    examples = load_hans(foreign / "hans_official.txt")
    assert len(examples) == 90 and r["hans"]["distil"]["scores"]["n"] == 90
    tok = T.AutoTokenizer.from_pretrained(foreign / "models" / "distil")
    model = T.AutoModelForSequenceClassification.from_pretrained(foreign / "models" / "distil").eval()
    def enc(e: dict, bert: bool) -> dict:  # DistilBERT has no segment embeddings
        batch = dict(tok(e["premise"], e["hypothesis"], return_tensors="pt"))
        return batch if bert else {k: v for k, v in batch.items() if k != "token_type_ids"}

    correct: dict[str, list[int]] = {}
    per_example = []
    with torch.no_grad():
        for e in examples:
            logits = model(**enc(e, False)).logits[0]
            pred = "entailment" if model.config.id2label[int(logits.argmax())] == "entailment" else "non-entailment"
            correct.setdefault(e["subcase"], []).append(int(pred == e["label"]))
            per_example.append(int(pred == e["label"]))
    got = r["hans"]["distil"]["scores"]["by_subcase"]
    assert len(got) == 30
    for sub, v in correct.items():
        assert got[sub] == pytest.approx(np.mean(v), abs=1e-12), sub
    assert json.loads((out / "steps" / "hans.distil.json").read_text())["value"]["correct"] == per_example

    # CKA: debiased linear CKA of the [CLS] hidden states, textbook formula, all examples and the aligned subset
    teacher = T.AutoModelForSequenceClassification.from_pretrained(foreign / "models" / "bert").eval()
    with torch.no_grad():
        hs_t = [teacher(**enc(e, True), output_hidden_states=True).hidden_states for e in examples]
        hs_s = [model(**enc(e, False), output_hidden_states=True).hidden_states for e in examples]
    cka = r["cka"]["main"]
    assert cka["teacher_layers"] == ["L0", "L1", "L2", "L3"] and cka["student_layers"] == ["L0", "L1"]
    ent = np.array([e["label"] == "entailment" for e in examples])
    for i, j in ((0, 0), (3, 1), (2, 0)):
        x = np.stack([h[i + 1][0, 0].double().numpy() for h in hs_t])  # [n, d] teacher layer i at [CLS]
        y = np.stack([h[j + 1][0, 0].double().numpy() for h in hs_s])
        assert cka["grid"][i][j] == pytest.approx(_debiased_cka(x, y), abs=1e-5)
        assert cka["aligned"][i][j] == pytest.approx(_debiased_cka(x[ent], y[ent]), abs=1e-5)
        assert cka["difference"][i][j] == pytest.approx(cka["aligned"][i][j] - cka["conflicting"][i][j], abs=1e-12)

    # the folder describes itself: `interp explore DIR` and `interp report DIR` need nothing else
    assert main(["explore", str(out), "--out", str(foreign / "again.html")]) == 0
    assert (foreign / "again.html").read_bytes() == (out / "main" / "explorer.html").read_bytes()
    assert main(["report", str(out)]) == 0


# --- resume, caching ---------------------------------------------------------------------------------------
TINY_STUDY = """
[study]
name = "tiny"
device = "cpu"

[models]
teacher = "models/teacher"
student = "models/student"
ref = "ref/student"

[data]
n-per-subcase = 3
seed = 5

[sizes]
n = 12
n-pairs = 8
n-examples = 4

[[pair]]
name = "main"
teacher = "teacher"
student = "student"
reference = "ref"
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from interp.organisms import save_tiny_pair

    root = tmp_path_factory.mktemp("tiny")
    save_tiny_pair(str(root / "models"))
    save_tiny_pair(str(root / "ref"), seed=1)
    (root / "study.toml").write_text(TINY_STUDY)
    return root


@pytest.fixture(scope="module")
def tiny_ref(tiny) -> Path:
    """The tiny study run once, uninterrupted, single-threaded like the tests that compare with it (module
    fixtures are set up before the function-scoped `one_thread`; float32 sums depend on the thread count)."""
    import torch

    out = tiny / "uninterrupted"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run(tiny / "study.toml", out)
    finally:
        torch.set_num_threads(n)
    return out


def _values(folder: Path) -> dict[str, str]:
    """Every step value under a results folder (study and pair steps) as canonical JSON (NaN compares equal)."""
    return {str(p.relative_to(folder)): json.dumps(json.loads(p.read_text())["value"], sort_keys=True)
            for p in sorted(folder.rglob("steps/*.json"))}


def _run(study: Path, out: Path, *sets: str):
    from interp.study import load_study
    from interp.study_run import run_study

    lines: list[str] = []
    run_study(load_study(study, list(sets)), out, progress=False, echo=lines.append)
    return lines


def _ran(folder: Path, since: dict[str, int]) -> set[str]:
    """Steps computed (not reused) since the log lengths in `since`."""
    from interp.steps import read_log

    out = set()
    for key, n in since.items():
        out |= {(key + "/" if key else "") + e["step"] for e in read_log(folder / key)[n:] if e["status"] == "ran"}
    return out


def _log_lengths(folder: Path) -> dict[str, int]:
    from interp.steps import read_log

    return {"": len(read_log(folder)), "main": len(read_log(folder / "main"))}


def test_interrupted_run_resumes_to_identical_results(tiny, tiny_ref, monkeypatch):
    """A run that dies inside the comparison (after 10 study steps and two of its own) is resumed: the
    finished steps are not redone and every stored value equals an uninterrupted run's."""
    import interp.comparison_run

    ref_out, out = tiny_ref, tiny / "interrupted"
    real = interp.comparison_run.cross_patch

    def boom(*a, **k):
        raise KeyboardInterrupt("killed mid-step")

    monkeypatch.setattr(interp.comparison_run, "cross_patch", boom)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny / "study.toml", out)
    monkeypatch.setattr(interp.comparison_run, "cross_patch", real)
    done_before = {p.stem for p in (out / "steps").glob("*.json")} | \
        {"main/" + p.stem for p in (out / "main" / "steps").glob("*.json")}
    assert {"hans.teacher", "circuits.ref", "main/head_map", "main/head_by_head"} <= done_before
    assert "main/cross_patch" not in done_before and "explorer.main" not in done_before
    since = _log_lengths(out)
    _run(tiny / "study.toml", out)
    ran = _ran(out, since)
    assert not ran & done_before, ran & done_before  # nothing finished was redone
    assert {"main/cross_patch", "main/weight_reference", "explorer.main"} <= ran
    assert _values(out) == _values(ref_out)
    a, b = (json.loads((f / "results.json").read_text())["results"] for f in (ref_out, out))
    a.pop("timings_s"), b.pop("timings_s")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert (out / "summary.md").read_text() == (ref_out / "summary.md").read_text()
    assert (out / "main" / "tables.md").read_text() == (ref_out / "main" / "tables.md").read_text()
    page = (out / "main" / "explorer.html").read_text().replace(str(out), str(ref_out))  # it names its folder
    assert page == (ref_out / "main" / "explorer.html").read_text()


def test_a_killed_process_leaves_no_partial_step(tiny, tiny_ref):
    """`interp run` killed (SIGKILL) while it works, then rerun: no step file is half written, the rerun
    reuses what was finished and the values equal an uninterrupted run's."""
    import os
    import subprocess
    import sys
    import time

    ref_out, out = tiny_ref, tiny / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "interp.cli", "run", str(tiny / "study.toml"), "--out", str(out),
                             "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "steps").glob("*.json"))) < 4 and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    finished = {p.stem for p in (out / "steps").glob("*.json")}
    assert finished  # (a temp file the kill interrupted may remain: it is never read as a step)
    for p in (out / "steps").glob("*.json"):
        json.loads(p.read_text())  # every stored step is complete JSON
    since = _log_lengths(out)
    _run(tiny / "study.toml", out)
    assert not _ran(out, since) & finished
    assert _values(out) == _values(ref_out)


def test_a_changed_setting_recomputes_only_what_depends_on_it(tiny, tiny_ref):
    out = tiny / "settings"
    shutil.copytree(tiny_ref, out)  # a finished run (a results folder can be moved: steps key on content)
    since = _log_lengths(out)
    _run(tiny / "study.toml", out)
    assert _ran(out, since) == set()  # a rerun computes nothing
    since = _log_lengths(out)
    _run(tiny / "study.toml", out, "sizes.n-pairs=6")
    assert _ran(out, since) == {"patching.teacher", "patching.student", "patching.ref", "circuits.teacher",
                                "circuits.student", "circuits.ref", "explorer.main"}
    since = _log_lengths(out)
    _run(tiny / "study.toml", out, "sizes.n-pairs=6", "sizes.n=10")
    assert _ran(out, since) == {"main/head_map", "main/head_by_head", "main/cross_patch", "main/weight_teacher",
                                "main/weight_reference", "main/cross_patch_reference", "explorer.main"}
    since = _log_lengths(out)
    _run(tiny / "study.toml", out, "sizes.n-pairs=6", "sizes.n=10", "data.seed=6")  # other HANS examples
    ran = _ran(out, since)
    assert {"hans.teacher", "cka.main", "main/head_map", "explorer.main"} <= ran
    assert not ran & {"patching.teacher", "circuits.student"}  # pairs come from the study seed, not the data


# --- mistakes fail before any computation -------------------------------------------------------------------
def _refuse_models(monkeypatch) -> None:
    import interp.loading
    import interp.subject
    import interp.train.zoo

    def refuse(*a, **k):
        raise AssertionError("a model was loaded (or the zoo built) before the study was checked")

    monkeypatch.setattr(interp.subject, "load_subject", refuse)
    monkeypatch.setattr(interp.subject, "load_folder", refuse)
    monkeypatch.setattr(interp.loading, "load_folder", refuse)
    monkeypatch.setattr(interp.train.zoo, "build_default_pair", refuse)


MISTAKES = [  # (edit of the tiny study text, regex the one-line message must match)
    (("n-pairs = 8", "n_pair = 8"), r"unknown key `n_pair` in \[sizes\]: did you mean `n-pairs`\?"),
    (("[data]", "[dataa]"), r"unknown key `dataa` in \[top level\]: did you mean `data`\?"),
    (("models/student\"", "models/nope\""), r"models\.student = .*models/nope: no such folder"),
    (("n = 12", "n = 0"), r"sizes\.n = 0: must be at least 1"),
    (("device = \"cpu\"", "device = \"gpu\""), r"study\.device = 'gpu': expected cpu, cuda, cuda:N or auto"),
    (("reference = \"ref\"", "reference = \"reff\""), r"reference = 'reff' is not in \[models\].*add it there"),
    (("[[pair]]", "[study2]\n[[pair]]"), r"unknown key `study2`"),
    (("reference = \"ref\"", "layer-map = \"0,2,9\""), r"layer-map: entries \[\(2, 9\)\] are out of range.*teacher layers 0\.\.5"),
    (("[data]\nn-per-subcase = 3\nseed = 5", "[data]\nsource = \"missing.txt\""),
     r"data\.source = .*missing\.txt'?: no such file"),
    (("name = \"tiny\"", "name = \"tiny\"\nanalyses = [\"hans\", \"refrence\"]"),
     r"unknown analysis 'refrence': did you mean 'reference'\?"),
    (("reference = \"ref\"\n", "\n"),  # asks for the reference analysis without a reference student
     None),
]


@pytest.mark.parametrize("edit,pattern", MISTAKES, ids=[f"mistake-{i}" for i in range(len(MISTAKES))])
def test_a_mistake_fails_before_any_computation(tiny, tmp_path, monkeypatch, capsys, edit, pattern):
    text = TINY_STUDY.replace(*edit)
    if pattern is None:
        text = text.replace("name = \"tiny\"", "name = \"tiny\"\nanalyses = [\"compare\", \"reference\"]")
        pattern = (r"analyses has \"reference\" but \[\[pair\]\] 'main' has no reference student: add reference = "
                   r"\"<model>\" to the pair")
    assert text != TINY_STUDY
    for d in ("models", "ref"):
        (tmp_path / d).symlink_to(tiny / d)
    (tmp_path / "study.toml").write_text(text)
    _refuse_models(monkeypatch)
    rc = main(["run", str(tmp_path / "study.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("interp run: error: study.toml: "), err
    assert re.search(pattern, err[0]), err[0]
    assert not (tmp_path / "out" / "steps").exists()


def test_tokenizer_and_label_mismatches_fail_before_any_computation(tmp_path, monkeypatch, capsys):
    from interp.organisms import hans_tokenizer

    good = _save_foreign(tmp_path / "good")
    other_labels = _save_foreign(tmp_path / "labels", labels={0: "contradiction", 1: "neutral", 2: "entailment"})
    tok = hans_tokenizer()
    tok.add_tokens(["zzzword"])
    other_tok = _save_foreign(tmp_path / "tok", tokenizer=tok)
    _official_hans(tmp_path / "hans.txt", 1)
    _refuse_models(monkeypatch)
    capsys.readouterr()  # save_pretrained's progress bars
    cases = [(other_tok["distil"], r"teacher 'bert' and student 'distil' use different tokenizers.*save the teacher's "
              r"tokenizer with the student"),
             (other_labels["distil"], r"label orders differ: teacher 'bert' has \['entailment', 'neutral', "
              r"'contradiction'\], student 'distil' has \['contradiction', 'neutral', 'entailment'\].*make "
              r"both config.json id2label orders agree")]
    for student, pattern in cases:
        (tmp_path / "study.toml").write_text(
            f'[models]\nbert = "{good["bert"]}"\ndistil = "{student}"\n[data]\nsource = "hans.txt"\n'
            '[[pair]]\nname = "p"\nteacher = "bert"\nstudent = "distil"\n')
        assert main(["run", str(tmp_path / "study.toml"), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.search(pattern, err[0]), err


# --- the shipped default study, `make demo`, one vocabulary ------------------------------------------------
def test_shipped_default_study_runs_on_a_stand_in_zoo(tiny, tmp_path, monkeypatch, capsys):
    """`interp run default` (what `make demo` runs) on the tiny pair standing in for the zoo, with small
    sizes: both pairs, their reference students, the zoo table, summary, report and explorers."""
    import interp.train.zoo as zoo
    from interp.study import find_study, load_study

    metrics = {"id_acc": 0.961, "hans_ent": 0.857, "hans_non_ent": 0.207, "spurious_gap": 0.65}
    models = tmp_path / "zoo"
    shutil.copytree(tiny / "models", models)
    shutil.copytree(tiny / "ref", tmp_path / "ref")
    for p in ("teacher", "student"):
        (models / p / "train_config.json").write_text(json.dumps({"metrics": metrics}))
        (tmp_path / "ref" / p / "train_config.json").write_text(json.dumps({"metrics": metrics}))
    paths = {"root": str(tmp_path), "teacher_erm": str(models / "teacher"), "student_erm": str(models / "student"),
             "teacher_debiased": str(tmp_path / "ref" / "teacher"), "student_debiased": str(tmp_path / "ref" / "student")}
    monkeypatch.setattr(zoo, "build_default_pair", lambda seed=0: paths)
    study = load_study(find_study("default"))
    assert [(p.name, p.reference) for p in study.pairs] == [("debiased_pair", "student_erm"),
                                                            ("erm_pair", "student_debiased")]
    assert study.sizes["n"] == 64 and study.data_seed == 1000 and study.n_per_subcase == 50  # the README's sample
    out = tmp_path / "demo"
    assert main(["run", "default", "--out", str(out), "--quiet", "--set", "data.n-per-subcase=2",
                 "--set", "sizes.n=12", "--set", "sizes.n-pairs=8", "--set", "sizes.n-examples=4"]) == 0
    printed = capsys.readouterr().out
    assert "| teacher_erm | 96.1 | 85.7 | 20.7 | 65.0 |" in printed
    assert "### debiased_pair: teacher_debiased -> student_debiased (reference student_erm)" in printed
    assert "distillation changed it by" in printed and f"open {out / 'report.html'}" in printed
    tables = (out / "debiased_pair" / "tables.md").read_text()
    assert len(tables) > 2500 and "## Reference (student_erm) -> student, weight patching" in tables
    assert re.search(r"HANS non-entailment accuracy \| \d+\.\d% \| \d+\.\d% \|", tables)
    for f in ("erm_pair/explorer.html", "debiased_pair/explorer.html", "report.html", "zoo_metrics.md"):
        assert (out / f).exists(), f
    # `make figures` on the study folder draws the default (debiased) pair's comparison, HANS from the zoo
    import importlib.util

    spec = importlib.util.spec_from_file_location("_gallery", Path(__file__).resolve().parents[1] / "analyses" / "gallery.py")
    assert spec is not None and spec.loader is not None
    gallery = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gallery)
    assert gallery.main(["--results", str(out), "--out", str(tmp_path / "gallery")]) == 0
    for name in ("head_map", "restoration", "patching_heads"):
        assert (tmp_path / "gallery" / f"gallery_{name}.png").is_file(), name
    assert (out / "debiased_pair" / "zoo_metrics.json").is_file()  # the HANS figures read the zoo's metrics


def test_demo_is_the_default_study(monkeypatch, tmp_path):
    """`interp demo --n N --seed S` = `interp run default` with n = N, seed S and HANS seed S + 1000."""
    import interp.study_run

    seen = {}
    monkeypatch.setattr(interp.study_run, "run_study", lambda study, out, progress=True: seen.update(s=study, out=out))
    assert main(["demo", "--n", "60", "--seed", "2", "--out", str(tmp_path / "d")]) == 0
    s = seen["s"]
    assert s.path.name == "default.toml" and s.sizes["n"] == 60 and s.seed == 2 and s.data_seed == 1002
    assert str(seen["out"]) == str(tmp_path / "d")


def test_plan_lists_the_steps_without_building_the_zoo(monkeypatch, tmp_path, capsys):
    _refuse_models(monkeypatch)
    assert main(["run", "default", "--plan", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    for step in ("hans.teacher_erm", "circuits.student_debiased", "cka.debiased_pair", "compare.erm_pair",
                 "explorer.erm_pair"):
        assert re.search(rf"\b{re.escape(step)}\s+to run", out), step


def test_one_vocabulary_for_the_study_file_and_the_commands():
    """Every study-file size and option is a flag of some subcommand under the same name, and both read
    a value the same way (layer maps, devices, counts)."""
    from interp.cli import build_parser
    from interp.commands._options import VOCAB, parse_layer_map
    from interp.study import OPTIONS, SIZES, parse_study

    flags = set()
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for p in sub.choices.values():
        flags |= {s for a in p._actions for s in a.option_strings}
    for key in (*SIZES, *OPTIONS, "device", "seed", "layer-map"):
        if key != "n-eval":
            assert f"--{key}" in flags, key
        assert key in VOCAB or key == "n-eval", key
    raw = {"models": {"t": "t", "s": "s"}, "pair": [{"name": "p", "teacher": "t", "student": "s", "layer-map": "0:0,1:2"}]}
    assert parse_study(raw).pairs[0].layer_map == parse_layer_map("0:0,1:2") == parse_layer_map("0,2")
    raw["pair"][0]["layer-map"] = [0, 2]
    assert parse_study(raw).pairs[0].layer_map == {0: 0, 1: 2}
    parser = build_parser()
    assert parser.parse_args(["cka", "--teacher", "t", "--student", "s", "--data", "d", "--device", "cuda:1"]).device \
        == VOCAB["device"].check("cuda:1")
    with pytest.raises(SystemExit):
        parser.parse_args(["cka", "--teacher", "t", "--student", "s", "--data", "d", "--device", "gpu"])


def test_the_readme_tutorial_study_file_parses():
    """The README's study file (BERT-base + DistilBERT on HANS) uses only known keys and valid values."""
    import tomllib

    from interp.study import parse_study

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", readme, flags=re.S).group(1)
    study = parse_study(tomllib.loads(block), Path("/tmp/bert_distilbert.toml"))
    assert study.pairs[0].layer_map == {0: 0, 1: 2, 2: 4, 3: 7, 4: 9, 5: 11}
    assert study.sizes["n-eval"] == 3000 and study.data_source == "/tmp/heuristics_evaluation_set.txt"
