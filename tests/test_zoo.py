"""Zoo and analysis scripts end to end on a tiny 6-layer BERT base (fast), and on MiniLM (slow)."""
import importlib.util
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A tiny random 6-layer BERT saved with MiniLM's tokenizer (real word pieces, no download)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from interp.train.zoo import base_model_path

    tok = AutoTokenizer.from_pretrained(base_model_path())
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=6, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, num_labels=3)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_base")
    BertForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _load_script(name):
    spec = importlib.util.spec_from_file_location(f"_analysis_{name}", ROOT / "analyses" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_build_default_pair_tiny_and_cache(tiny_base, tmp_path, monkeypatch):
    from interp.train import zoo
    from interp.train.trainer import load_trained

    monkeypatch.setenv("KD_INTERP_CACHE", str(tmp_path / "cache"))
    cfg = replace(zoo.QUICK, n_train=60, n_test=30, hans_per_subcase=1, base=tiny_base, teacher_lr=1e-3,
                  student_lr=1e-3)
    paths = zoo.build_default_pair(seed=0, config=cfg, progress=False)
    assert set(zoo.PAIR_KEYS) <= set(paths)
    assert paths["root"].startswith(str(tmp_path / "cache"))
    for k in zoo.PAIR_KEYS:
        rec = json.loads((Path(paths[k]) / "train_config.json").read_text())
        assert rec["status"] == "complete" and rec["seed"] == 0
        for m in ("id_acc", "hans_ent", "hans_non_ent", "spurious_gap", "eod_overlap", "dpd_overlap"):
            assert m in rec["metrics"]
    assert json.loads((Path(paths["teacher_debiased"]) / "train_config.json").read_text())["config"]["train"]["loss"] == "poe"
    s, _, rec = load_trained(paths["student_debiased"])
    assert s.config.num_hidden_layers == 3 and rec["config"]["teacher"] == "teacher_debiased"
    assert s.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    mtimes = {k: os.stat(Path(paths[k]) / "train_config.json").st_mtime_ns for k in zoo.PAIR_KEYS}
    assert zoo.build_default_pair(seed=0, config=cfg, progress=False) == paths  # cached
    assert mtimes == {k: os.stat(Path(paths[k]) / "train_config.json").st_mtime_ns for k in zoo.PAIR_KEYS}
    # a moved cache is still a cache: nothing in the keys depends on where it lives
    import shutil
    shutil.copytree(tmp_path / "cache", tmp_path / "moved")
    moved = zoo.build_default_pair(cache_dir=tmp_path / "moved", seed=0, config=cfg, progress=False)
    assert all(os.stat(Path(moved[k]) / "train_config.json").st_mtime_ns == mtimes[k] for k in zoo.PAIR_KEYS)


def test_kd_debias_quick_and_resume(tiny_base, tmp_path):
    kd = _load_script("kd_debias")
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["--quick", "--base", tiny_base, "--out", str(out), "--cache-dir", str(cache),
            "--conditions", "teacher_erm", "teacher_debiased", "kd_debiased", "ikd_debiased"]
    assert kd.main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["seeds"] == [0, 1] and "versions" in res
    s = res["summary"]["kd_debiased"]
    assert s["n_seeds"] == 2 and len(s["spurious_gap"]["values"]) == 2
    lo, hi = s["id_acc"]["ci95"]
    assert lo <= s["id_acc"]["mean"] <= hi
    assert "| kd_debiased | 2 |" in (out / "results.md").read_text()
    runs_before = (out / "runs.json").read_text()
    assert kd.main(args) == 0  # resumes: nothing retrained
    assert (out / "runs.json").read_text() == runs_before
    # runs split over processes are merged and reported without training anything
    merged = tmp_path / "merged"
    assert kd.main(["--quick", "--base", tiny_base, "--out", str(merged), "--cache-dir", str(tmp_path / "empty"),
                    "--merge", str(out), "--report-only", "--conditions", "teacher_erm", "teacher_debiased",
                    "kd_debiased", "ikd_debiased", "kd_debiased_aug"]) == 0
    rep = json.loads((merged / "results.json").read_text())
    assert rep["summary"]["kd_debiased"] == s and rep["summary"]["kd_debiased_aug"]["n_seeds"] == 0
    assert not (tmp_path / "empty").exists()  # nothing was trained
    pair = next(p for p in rep["paired"] if p["a"] == "kd_debiased" and p["b"] == "teacher_debiased")
    d = [m - t for m, t in zip(s["spurious_gap"]["values"],
                               res["summary"]["teacher_debiased"]["spurious_gap"]["values"])]
    assert pair["spurious_gap"]["values"] == pytest.approx(d) and pair["seeds"] == [0, 1]


def test_t_interval():
    kd = _load_script("kd_debias")
    m, lo, hi = kd.t_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t_{0.975, 2} = 4.3027 -> half-width 4.3027 / sqrt(3)
    assert m == 2.0 and hi - m == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)
    assert kd.t_interval([1.0])[0] == 1.0


def test_temperature_sweep_quick(tiny_base, tmp_path):
    ts = _load_script("temperature_sweep")
    out = tmp_path / "out"
    assert ts.main(["--quick", "--base", tiny_base, "--out", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["summary"]) == {"teacher_erm", "student_nokd", "kd_erm_T1", "kd_erm_T10"}
    s = res["summary"]["kd_erm_T10"]
    assert s["n_seeds"] == 2 and "classes_differing_vs_nokd" in s and "eod_overlap" in s


@pytest.mark.slow
def test_build_default_pair_minilm_quick(tmp_path):
    """The real organism at the QUICK size: trains, evaluates and caches four MiniLM-based models."""
    from interp.train import zoo

    paths = zoo.build_default_pair(cache_dir=tmp_path, seed=0, config=zoo.QUICK, progress=False)
    for k in zoo.PAIR_KEYS:
        m = zoo.read_metrics(paths[k])
        assert 0.0 <= m["id_acc"] <= 1.0 and 0.0 <= m["hans_non_ent"] <= 1.0


DETERMINISM = """
import hashlib, json, sys
from dataclasses import replace
from interp.train import zoo
cfg = replace(zoo.QUICK, n_train=60, n_test=30, hans_per_subcase=1, n_dev=30, n_aug=30, base=sys.argv[1],
              teacher_lr=1e-3, student_lr=1e-3, eval_every=1, teacher_select_best=True)
t = zoo.build_teacher(sys.argv[2], "poe", 3, cfg, progress=False, name="teacher_debiased")
s = zoo.build_student(t, sys.argv[2], 3, cfg, name="student_aug", augment=True, progress=False)
rec = {k: json.load(open(f"{p}/train_config.json")) for k, p in (("t", t), ("s", s))}
h = hashlib.sha256()
from safetensors.torch import load_file
for p in (t, s):
    for k, v in sorted(load_file(f"{p}/model.safetensors").items()):
        h.update(k.encode()); h.update(v.numpy().tobytes())
print(json.dumps({"weights": h.hexdigest(), "metrics": [rec[k]["metrics"] for k in "ts"],
                  "curves": [rec[k]["history"].get("curve") for k in "ts"],
                  "selected": rec["t"]["history"].get("selected_step")}, sort_keys=True))
"""


def test_training_is_deterministic_across_processes(tiny_base, tmp_path):
    """Teacher (PoE, checkpoint selected on the dev split: the option, not the default, so the selection path is
    covered too) and an augmented KD student, trained twice in fresh
    processes with different hash seeds: identical weights, metrics and training curves."""
    import subprocess
    import sys

    outs = []
    for i, hs in enumerate(("1", "2")):
        env = {**os.environ, "PYTHONHASHSEED": hs}
        r = subprocess.run([sys.executable, "-c", DETERMINISM, tiny_base, str(tmp_path / f"c{i}")], env=env,
                           capture_output=True, text=True, check=True)
        outs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1]
    assert outs[0]["curves"][0] and outs[0]["selected"] is not None  # the curve and the selection are recorded
