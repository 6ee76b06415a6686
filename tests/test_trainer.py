"""Training loop, KD, caching and atomic saving on tiny BERTs (fast)."""
import json
import random

import numpy as np
import pytest
import torch
from _kd_tiny import LABELS3, WORDS, tiny_bert, tiny_tokenizer

from interp.train.students import student_from_teacher_layers
from interp.train.trainer import (
    CONFIG_FILE,
    TrainConfig,
    encode,
    is_complete,
    iterative_kd,
    load_trained,
    predict_logits,
    train_and_save,
    train_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def toy_data(n=96, seed=0):
    r = random.Random(seed)
    out = []
    for i in range(n):
        p = r.sample(WORDS[:14], 5)
        lab = LABELS3[i % 3]
        if lab == "entailment":
            h = r.sample(p, 3)
        elif lab == "neutral":
            h = r.sample(WORDS[14:], 3)
        else:
            h = ["not"] + r.sample(p, 2)
        out.append({"id": str(i), "premise": " ".join(p), "hypothesis": " ".join(h), "label": lab})
    return out


def acc(model, tok, data):
    y = torch.tensor([LABELS3.index(e["label"]) for e in data])
    return (predict_logits(model, tok, data).argmax(-1) == y).float().mean().item()


FAST = dict(epochs=10, batch_size=16, lr=3e-3, warmup_ratio=0.1, max_length=16)


def test_encode_dynamic_padding_and_predict_order():
    tok = tiny_tokenizer()
    data = toy_data(10)
    enc = encode(tok, data, 16, {l: i for i, l in enumerate(LABELS3)})
    assert len(enc) == 10 and enc.labels.tolist()[:3] == [0, 1, 2]
    m = tiny_bert(layers=2)
    a = predict_logits(m, tok, data, batch_size=3)
    b = torch.cat([predict_logits(m, tok, [e]) for e in data])
    assert torch.allclose(a, b, atol=1e-5)


def test_erm_learns_and_leaves_eval_mode():
    tok, data = tiny_tokenizer(), toy_data()
    m = tiny_bert(layers=2)
    before = acc(m, tok, data)
    h = train_model(m, tok, data, TrainConfig(loss="erm", **FAST), progress=False)
    assert not m.training
    assert h["loss_last10"] < h["loss_first"]
    assert acc(m, tok, data) > max(before, 0.6)


def test_training_is_seeded():
    tok, data = tiny_tokenizer(), toy_data(48)
    outs = []
    for _ in range(2):
        m = tiny_bert(layers=2, seed=3)
        train_model(m, tok, data, TrainConfig(loss="erm", epochs=1, batch_size=16, lr=1e-3), progress=False)
        outs.append(predict_logits(m, tok, data))
    assert torch.equal(outs[0], outs[1])


def test_debiasing_losses_run_and_need_bias_probs():
    tok, data = tiny_tokenizer(), toy_data(48)
    pb = np.full((48, 3), 1 / 3)
    pb[:, 0] = 0.6
    pb[:, 1:] = 0.2
    teacher = tiny_bert(layers=2, seed=1)
    for loss in ["poe", "reweight", "focal", "conf_reg"]:
        m = tiny_bert(layers=2)
        h = train_model(m, tok, data, TrainConfig(loss=loss, epochs=1, batch_size=16, lr=1e-3), bias_probs=pb,
                        teacher=teacher, progress=False)
        assert np.isfinite(h["loss_last10"])
    with pytest.raises(ValueError, match="bias_probs"):
        train_model(tiny_bert(layers=2), tok, data, TrainConfig(loss="poe"), progress=False)
    with pytest.raises(ValueError, match="bias_probs must be"):
        train_model(tiny_bert(layers=2), tok, data, TrainConfig(loss="poe"), bias_probs=pb[:3], progress=False)
    with pytest.raises(ValueError, match="teacher"):
        train_model(tiny_bert(layers=2), tok, data, TrainConfig(loss="kd"), progress=False)
    with pytest.raises(ValueError):
        TrainConfig(loss="nope")


def test_kd_student_moves_toward_teacher():
    tok, data = tiny_tokenizer(), toy_data()
    teacher = tiny_bert(layers=2, seed=0)
    train_model(teacher, tok, data, TrainConfig(loss="erm", **FAST), progress=False)
    t = predict_logits(teacher, tok, data)
    assert t.softmax(-1).max(-1).values.mean() > 0.5  # a confident, non-trivial teacher
    student = tiny_bert(layers=1, seed=7)

    def kl(s):
        return torch.nn.functional.kl_div(torch.log_softmax(s, -1), torch.log_softmax(t, -1), log_target=True,
                                          reduction="batchmean").item()
    before = kl(predict_logits(student, tok, data))
    train_model(student, tok, data, TrainConfig(loss="kd", alpha=1.0, temperature=2.0, **FAST), teacher=teacher,
                progress=False)
    after_logits = predict_logits(student, tok, data)
    assert kl(after_logits) < 0.5 * before
    agree = (after_logits.argmax(-1) == t.argmax(-1)).float().mean().item()
    assert agree > 0.8


def test_train_and_save_cache_and_reload(tmp_path):
    tok, data = tiny_tokenizer(), toy_data(48)
    calls = []

    def build():
        calls.append(1)
        return tiny_bert(layers=2), tok

    cfg = TrainConfig(loss="erm", epochs=1, batch_size=16, lr=1e-3)
    out = tmp_path / "m"
    def ev(m, t):
        return {"acc": acc(m, t, data)}
    p = train_and_save(out, build, data, cfg, evaluate=ev, extra={"data": "toy48"}, progress=False)
    assert is_complete(p) and len(calls) == 1
    rec = json.loads((p / CONFIG_FILE).read_text())
    assert rec["status"] == "complete" and rec["seed"] == 0 and "torch" in rec["versions"]
    assert rec["config"]["train"]["loss"] == "erm" and "acc" in rec["metrics"]
    mtime = (p / CONFIG_FILE).stat().st_mtime_ns
    assert train_and_save(out, build, data, cfg, evaluate=ev, extra={"data": "toy48"}, progress=False) == p
    assert len(calls) == 1 and (p / CONFIG_FILE).stat().st_mtime_ns == mtime  # reused, not retrained
    with pytest.raises(ValueError, match="different config"):
        train_and_save(out, build, data, TrainConfig(loss="erm", epochs=2), extra={"data": "toy48"}, progress=False)
    m2, tok2, rec2 = load_trained(p)
    assert not m2.training and m2.config._attn_implementation == "eager"
    assert abs(acc(m2, tok2, data) - rec["metrics"]["acc"]) < 1e-9
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp folders left


def test_atomic_save_leaves_nothing_on_failure(tmp_path, monkeypatch):
    tok, data = tiny_tokenizer(), toy_data(32)

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(tok), "save_pretrained", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        train_and_save(tmp_path / "m", lambda: (tiny_bert(layers=1), tok), data,
                       TrainConfig(loss="erm", epochs=1, batch_size=16), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_iterative_kd_chains_teachers(tmp_path):
    tok, data = tiny_tokenizer(), toy_data(48)
    tpath = train_and_save(tmp_path / "teacher", lambda: (tiny_bert(layers=3), tok), data,
                           TrainConfig(loss="erm", epochs=2, batch_size=16, lr=3e-3), progress=False)
    teacher = load_trained(tpath)[0]
    def build():
        return student_from_teacher_layers(teacher, [0, 2]), tok
    paths = iterative_kd(tmp_path / "ikd", tpath, build, data,
                         TrainConfig(loss="kd", alpha=0.5, temperature=2.0, epochs=1, batch_size=16, lr=1e-3),
                         rounds=2, progress=False)
    assert [p.name for p in paths] == ["round1", "round2"]
    recs = [json.loads((p / CONFIG_FILE).read_text()) for p in paths]
    assert recs[0]["config"]["teacher"] == "../teacher"  # relative to the rounds' folder: the tree can move
    assert recs[1]["config"]["teacher"] == "round1" and recs[1]["config"]["round"] == 2
    moved = tmp_path / "moved"
    moved.mkdir()
    for d in ("teacher", "ikd"):
        (tmp_path / d).rename(moved / d)
    again = iterative_kd(moved / "ikd", moved / "teacher", build, data,
                         TrainConfig(loss="kd", alpha=0.5, temperature=2.0, epochs=1, batch_size=16, lr=1e-3),
                         rounds=2, progress=False)
    assert [json.loads((p / CONFIG_FILE).read_text()) for p in again] == recs  # reused, not retrained
    with pytest.raises(ValueError):
        iterative_kd(tmp_path / "x", tpath, build, data, TrainConfig(loss="erm"), rounds=1)


def test_freeze_word_embeddings():
    tok, data = tiny_tokenizer(), toy_data(32)
    m = tiny_bert(layers=1)
    w0 = m.bert.embeddings.word_embeddings.weight.detach().clone()
    p0 = m.bert.embeddings.position_embeddings.weight.detach().clone()
    train_model(m, tok, data, TrainConfig(loss="erm", epochs=1, batch_size=16, lr=1e-2, freeze_word_embeddings=True),
                progress=False)
    assert torch.equal(m.bert.embeddings.word_embeddings.weight, w0)
    assert not torch.equal(m.bert.embeddings.position_embeddings.weight, p0)


def test_annealed_poe_goes_from_poe_to_plain_cross_entropy():
    """bias_anneal scales the bias log-probabilities from 1 (plain PoE) to the given value at the end; at 0
    the bias expert is uniform and cancels in the softmax, leaving plain cross-entropy."""
    import torch

    from interp.train import losses as L
    from interp.train.loop import _batch_loss
    from interp.train.trainer import TrainConfig

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=g)
    pb = torch.softmax(torch.randn(6, 3, generator=g) * 2, -1)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    cfg = TrainConfig(loss="poe", bias_anneal=0.0)
    torch.testing.assert_close(_batch_loss(cfg, logits, y, pb, None, 0.0), L.poe_loss(logits, pb, y))
    torch.testing.assert_close(_batch_loss(cfg, logits, y, pb, None, 1.0), L.erm_loss(logits, y))
    half = TrainConfig(loss="poe", bias_anneal=0.5)
    lam = 1.0 - 0.5 * 0.5  # halfway through training
    ref = L.poe_loss(logits, torch.softmax(lam * pb.log(), -1), y)
    torch.testing.assert_close(_batch_loss(half, logits, y, pb, None, 0.5), ref)
    with pytest.raises(ValueError, match="bias_anneal"):
        TrainConfig(loss="poe", bias_anneal=1.5)
    with pytest.raises(ValueError, match="select_best"):
        TrainConfig(select_best=True)


def test_dev_curve_and_best_checkpoint_selection():
    """The curve's dev accuracies are those of the model at each step (the last one re-measured by hand),
    evaluation does not change the training trajectory, and select_best restores the best one."""
    tok, data, dev = tiny_tokenizer(), toy_data(), toy_data(30, seed=1)
    cfg = TrainConfig(loss="erm", **{**FAST, "epochs": 3}, eval_every=2)
    plain = tiny_bert(layers=2)
    train_model(plain, tok, data, TrainConfig(loss="erm", **{**FAST, "epochs": 3}), progress=False)
    m = tiny_bert(layers=2)
    h = train_model(m, tok, data, cfg, dev_examples=dev, progress=False)
    steps = [c["step"] for c in h["curve"]]
    assert steps == sorted(set(steps)) and steps[-1] == h["steps"] and steps[0] == 2
    assert h["curve"][-1]["dev_acc"] == pytest.approx(acc(m, tok, dev))
    for a, b in zip(plain.parameters(), m.parameters()):  # evaluating on dev consumes no randomness
        assert torch.equal(a, b)
    best = tiny_bert(layers=2)
    hb = train_model(best, tok, data, TrainConfig(loss="erm", **{**FAST, "epochs": 3}, eval_every=2,
                                                  select_best=True), dev_examples=dev, progress=False)
    top = max(c["dev_acc"] for c in hb["curve"])
    assert hb["selected_dev_acc"] == top and acc(best, tok, dev) == pytest.approx(top)
    assert hb["selected_step"] == next(c["step"] for c in hb["curve"] if c["dev_acc"] == top)
    with pytest.raises(ValueError, match="dev_examples"):
        train_model(tiny_bert(layers=2), tok, data, TrainConfig(loss="erm", **FAST, eval_every=2, select_best=True),
                    progress=False)
