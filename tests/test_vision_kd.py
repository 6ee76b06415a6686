"""analyses/vision_kd.py --quick: runs in under a minute, its numbers equal a hand computation from the saved
models, its intervals equal scipy's, and a second run resumes from the cache without training."""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses"))

import vision_kd  # noqa: E402

from interp.data import vision  # noqa: E402
from interp.train.checkpoints import load_trained  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_run_matches_hand_computation_and_resumes(tmp_path, monkeypatch):
    t0 = time.process_time()  # CPU time: on the shared machine, wall time includes other jobs and pauses
    assert vision_kd.main(["--quick", "--out", str(tmp_path)]) == 0
    assert time.process_time() - t0 < 60
    rec = json.loads((tmp_path / "results.json").read_text())
    runs, s = rec["runs"], rec["summary"]
    # 2 seeds x (digits x 2 pairs x 9 models: ERM and 3 debiased teachers, their students, the student alone;
    # Trifeature: ResNet teacher, LeNet alone, LeNet at 2 temperatures)
    assert len(runs) == 2 * (2 * 9 + 4)
    assert {r["condition"] for r in runs.values() if r["data"] == "digits"} == {
        f"{who}_{m}" for who in ("teacher", "kd") for m in ("erm", "group", "dro", "poe")} | {"student_alone"}
    lenet = next(r for r in runs.values() if r["condition"] == "kd_T1")
    assert type(load_trained(lenet["path"])[0]).__name__ == "LeNetForImageClassification"
    assert json.loads((Path(next(r["path"] for r in runs.values() if r["condition"] == "teacher_dro"))
                       / "train_config.json").read_text())["config"]["train"]["loss"] == "group_dro"
    for f in ("results.md", "fig_debias.png", "fig_debias.svg", "fig_temperature.png", "fig_temperature.svg"):
        assert (tmp_path / f).stat().st_size > 500, f

    # one distilled student, evaluated by hand from its saved weights on an independently generated test set
    r = next(r for r in runs.values() if r["condition"] == "kd_T10" and r["seed"] == 1)
    model = load_trained(r["path"])[0]
    test = vision.trifeature(64, "test", label="shape", spurious="colour", strength=None, seed=1, size=16, n_values=4)
    with torch.no_grad():
        pred = model(pixel_values=test.images).logits.argmax(-1).numpy()
    y, a = test.labels.numpy(), test.attributes.numpy()
    m = r["metrics"]
    assert m["accuracy"] == pytest.approx(float((pred == y).mean()), abs=1e-12)
    groups = [(c, g) for c in range(4) for g in range(4) if ((y == c) & (a == g)).any()]
    assert m["worst_group_accuracy"] == pytest.approx(min((pred[(y == c) & (a == g)] == c).mean() for c, g in groups))
    dpd = np.mean([max((pred[a == g] == c).mean() for g in range(4)) - min((pred[a == g] == c).mean() for g in range(4))
                   for c in range(4)])
    assert m["dpd"] == pytest.approx(float(dpd), abs=1e-12)

    # a summary cell: the mean and Student-t interval over seeds, recomputed with scipy
    vals = [runs[k]["metrics"]["accuracy"] for k in sorted(runs) if "/debias/digits/vit/kd_group/" in k]
    cell = s["debias"]["digits/vit"]["conditions"]["kd_group"]["accuracy"]
    half = stats.t.ppf(0.975, 1) * np.std(vals, ddof=1) / math.sqrt(2)
    assert cell["mean"] == pytest.approx(np.mean(vals)) and cell["values"] == vals
    if half > 0:
        assert cell["ci95"] == pytest.approx([np.mean(vals) - half, np.mean(vals) + half])
    assert 0 <= s["temperature"]["kd_T10"]["n_sc"] <= 4 and 0 <= s["temperature"]["kd_T10"]["n_tc"] <= 4
    assert "## Findings" in (tmp_path / "results.md").read_text()

    # resume: every model is cached and every run recorded, so nothing trains or evaluates again
    def refuse(*args, **kw):
        raise AssertionError("a cached model was trained again")
    monkeypatch.setattr("interp.train.checkpoints.train_model", refuse)
    monkeypatch.setattr(vision_kd, "evaluate", refuse)
    before = (tmp_path / "runs.json").read_text()
    assert vision_kd.main(["--quick", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "runs.json").read_text() == before
