"""Teacher vs student on constructed cases with known answers."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import make_bert, make_pairs

from interp.compare import (
    bootstrap_ci,
    compare_checkpoints,
    entailment_margin,
    head_effects,
    restoration,
)
from interp.cross_patch import cross_patch, fit_ridge, fit_site_maps
from interp.organisms import permuted_heads
from interp.pair import HeadMap, Pair, make_pair, match_heads
from interp.subject import load_subject

ABLATED = (1, 2)


def _ablate_value(model, layer: int, head: int) -> None:
    """Zero a head's value projection: its z becomes exactly 0."""
    attn = model.bert.encoder.layer[layer].attention.self
    d = attn.attention_head_size
    with torch.no_grad():
        attn.value.weight[head * d:(head + 1) * d] = 0
        attn.value.bias[head * d:(head + 1) * d] = 0


def _identity_head_map(subject):
    heads = [(l, h) for l in range(subject.n_layers) for h in range(subject.n_heads)]
    return HeadMap({k: k for k in heads}, {k: 1.0 for k in heads}, np.eye(len(heads)), np.eye(len(heads)))


@pytest.fixture
def teacher(tokenizer):
    return load_subject(make_bert(n_layers=3), tokenizer=tokenizer, name="teacher")


def _scaled(model, scale: float = 5.0, head_scale: float = 40.0):
    """Larger weights (as in test_patching._subject): at init scale, ablating a head moves the margin by
    ~1e-6, a teacher-student gap that cannot be told apart from 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.mul_(head_scale if ("classifier" in name or "pooler" in name) else scale)
    return model


def test_cross_patching_ranks_the_ablated_head_first_and_restores_the_teacher(tokenizer):
    teacher = load_subject(_scaled(make_bert(n_layers=3)), tokenizer=tokenizer, name="teacher")
    model = copy.deepcopy(teacher.model)
    _ablate_value(model, *ABLATED)
    student = load_subject(model, tokenizer=tokenizer, name="student")
    pair = Pair(teacher, student, {0: 0, 1: 1, 2: 2}, _identity_head_map(student))
    result = cross_patch(pair, make_pairs(40), progress=False)
    torch.testing.assert_close(result["patched"]["head 1.2<-T1.2"], result["teacher"], atol=1e-5, rtol=0)
    ranked = restoration(result, entailment_margin(student.labels), n_boot=200)
    assert ranked[0]["gap_significant"] and not ranked[0]["no_signal"]
    heads = [r for r in ranked if r["component"].startswith("head")]
    assert heads[0]["component"] == "head 1.2<-T1.2"
    assert heads[0]["restored"] == pytest.approx(1.0, abs=1e-5)
    assert abs(heads[1]["restored"]) < 0.9
    # a head before the ablated one is identical in both models: patching it changes nothing
    zero = next(r for r in ranked if r["component"] == "head 0.0<-T0.0")
    assert zero["restored"] == pytest.approx(0.0, abs=1e-5)


def test_head_matching_recovers_a_permutation(teacher, tokenizer):
    org = permuted_heads(teacher.model, layer=1, perm=[2, 0, 3, 1], tokenizer=tokenizer)
    student = load_subject(org.student, tokenizer=tokenizer, name="permuted")
    data = make_pairs(30)
    with torch.no_grad():  # same function
        torch.testing.assert_close(student.run(student.tokenize(data))[0], teacher.run(teacher.tokenize(data))[0],
                                   atol=1e-5, rtol=0)
    hm = match_heads(teacher, student, data, layer_map={0: 0, 1: 1, 2: 2})
    assert hm.matches == org.expected_head_map  # student head h computes what teacher head perm[h] did
    assert all(hm.score[(1, h)] == pytest.approx(1.0, abs=1e-6) for h in range(4))


def test_head_effects_find_the_only_head_that_matters(tokenizer):
    """With every head but one zeroed at the output projection, only that head has an effect."""
    model = make_bert(n_layers=2)
    subject = load_subject(model, tokenizer=tokenizer)
    keep = (1, 3)
    for layer in range(2):
        dense = model.bert.encoder.layer[layer].attention.output.dense
        d = subject.d_head
        with torch.no_grad():
            for h in range(4):
                if (layer, h) != keep:
                    dense.weight[:, h * d:(h + 1) * d] = 0
    eff = head_effects(subject, make_pairs(30), progress=False)
    total = np.abs(eff["total"]).mean(0)
    assert total.argmax() == keep[0] * 4 + keep[1]
    assert np.delete(total.ravel(), keep[0] * 4 + keep[1]).max() < 1e-6
    # the last layer's head has no later components: direct effect equals total effect
    np.testing.assert_allclose(eff["direct"][:, 1], eff["total"][:, 1], atol=1e-6)


def test_ridge_map_recovers_a_linear_map():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 8, generator=g, dtype=torch.float64)
    A = torch.randn(8, 5, generator=g, dtype=torch.float64)
    y = x @ A + 3.0
    m = fit_ridge(x, y, lam=1e-8)
    assert m.r2 > 0.999999
    torch.testing.assert_close(m(x), y, atol=1e-5, rtol=0)


def test_widths_that_differ_need_a_fitted_map(teacher, tokenizer):
    student = load_subject(make_bert(n_layers=2, d=16, heads=2, seed=1), tokenizer=tokenizer)
    pair = Pair(teacher, student, {0: 0, 1: 2})
    with pytest.raises(ValueError, match="no fitted map"):
        cross_patch(pair, make_pairs(8), progress=False)
    maps = fit_site_maps(pair, make_pairs(60, seed=1))
    assert set(maps) == {"blocks.0.hook_resid_post", "blocks.2.hook_resid_post"}
    out = cross_patch(pair, make_pairs(8), maps=maps, progress=False)
    assert all(torch.isfinite(v).all() for v in out["patched"].values())


def test_bad_pairs_are_refused(teacher, tokenizer, minilm_path):
    import transformers as T
    other = load_subject(make_bert(seed=3), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="out of range"):
        Pair(teacher, other, {0: 5})
    relabelled = make_bert(seed=3)
    relabelled.config.id2label = {0: "neutral", 1: "entailment", 2: "contradiction"}
    with pytest.raises(ValueError, match="label orders differ"):
        make_pair(teacher, load_subject(relabelled, tokenizer=tokenizer))
    recased = make_bert(seed=3)
    recased.config.id2label = {0: "Neutral", 1: "ENTAILMENT", 2: "Contradiction"}
    with pytest.raises(ValueError, match="label orders differ"):  # still an order difference, in another case
        make_pair(teacher, load_subject(recased, tokenizer=tokenizer))
    vocab = dict(tokenizer.get_vocab())
    vocab["w0"], vocab["w1"] = vocab["w1"], vocab["w0"]
    with pytest.raises(ValueError, match="different tokenizers"):
        make_pair(teacher, load_subject(make_bert(seed=3), tokenizer=T.BertTokenizer(vocab=vocab)))
    with pytest.raises(ValueError, match="No layer map"):
        make_pair(teacher, other)


def test_checkpoint_comparison_of_identical_models_shows_no_change(teacher, tokenizer):
    same = load_subject(copy.deepcopy(teacher.model), tokenizer=tokenizer)
    rows = compare_checkpoints(teacher, same, make_pairs(16), progress=False)
    assert len(rows) == 12
    for r in rows:
        assert r["pattern_sim"] == pytest.approx(1.0, abs=1e-6)
        assert r["z_cka"] == pytest.approx(1.0, abs=1e-6)
        assert r["total_change"] == pytest.approx(0.0, abs=1e-6)


def test_margin_and_bootstrap_by_hand():
    m = entailment_margin(["entailment", "neutral", "contradiction"])
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    assert float(m(logits)) == pytest.approx(2.0 - np.log(2.0))
    lo, hi = bootstrap_ci(np.ones(50) * 3.0)
    assert lo == hi == 3.0
    with pytest.raises(ValueError, match="entailment"):
        entailment_margin(["a", "b"])


def test_compare_command_writes_a_results_folder(tmp_path, tokenizer):
    """`interp compare` end to end on tiny checkpoints, and a rerun resumes from the stored steps."""
    import json

    from interp.cli import main
    from interp.train.students import student_from_teacher_layers

    teacher = make_bert(n_layers=3)
    student = student_from_teacher_layers(teacher, [0, 2])
    for name, model in (("t", teacher), ("s", student)):
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    args = ["compare", "--teacher", str(tmp_path / "t"), "--student", str(tmp_path / "s"), "--n", "12",
            "--out", str(tmp_path / "out")]
    assert main(args) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["results"]["pair"]["layer_map"] == {"0": 0, "1": 2}
    assert len(res["results"]["head_by_head"]) == 8
    assert (tmp_path / "out" / "restoration_margin.png").stat().st_size > 0
    steps = sorted(p.stat().st_mtime_ns for p in (tmp_path / "out" / "steps").iterdir())
    assert len(steps) == 4  # head map, head by head, cross-model patching, weight patching against the teacher
    # an untrained copy of teacher layers: every component's parameters equal the teacher's
    w = res["results"]["attribution"]["weight_teacher"]
    assert len(w["unchanged"]) == len(w["margin"]) == 2 * (4 + 4) + 2  # heads, mlp, 2 LNs, layer; embed, readout
    assert all(r["delta"] == 0.0 for r in w["margin"])
    assert main(args) == 0  # resumes: no step recomputed
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "out" / "steps").iterdir()) == steps
    (tmp_path / "out" / "steps" / "cross_patch.json").unlink()  # a run interrupted before cross-patching
    assert main(args) == 0  # resumes with the head map read back from JSON
    again = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["attribution"]["margin"]
    assert sorted(r["component"] for r in again) == sorted(r["component"] for r in res["results"]["attribution"]["margin"])


def test_layer_map_by_cka_finds_the_layers_a_student_was_copied_from(teacher, tokenizer):
    from interp.pair import layer_map_by_cka
    from interp.train.students import student_from_teacher_layers

    model = student_from_teacher_layers(teacher.model, [0, 2]).eval()
    del model.config.kd_init  # forget the init: the map must come from the data
    student = load_subject(model, tokenizer=tokenizer)
    layer_map, grid = layer_map_by_cka(teacher, student, make_pairs(60))
    assert layer_map == {0: 0, 1: 2}
    assert grid.shape == (3, 2)
    assert make_pair(teacher, student, data=make_pairs(60)).layer_map == {0: 0, 1: 2}


def test_head_effects_equal_one_head_at_a_time(tokenizer):
    """Batched head effects against full forward passes with one head mean-ablated (and, for the
    direct effect, every later attn_out and mlp_out written back to its clean value)."""
    model = make_bert(n_layers=3, seed=4)
    for name, p in model.named_parameters():  # larger weights: effects well above float noise
        if p.dim() > 1:
            p.data.mul_(30.0 if ("classifier" in name or "pooler" in name) else 3.0)
    subject = load_subject(model, tokenizer=tokenizer)
    data = make_pairs(9, seed=2)
    eff = head_effects(subject, data, batch_size=4, progress=False)
    batch = subject.tokenize(data)
    L, H = subject.n_layers, subject.n_heads
    later = [f"blocks.{l}.{k}" for l in range(L) for k in ("hook_attn_out", "hook_mlp_out")]
    with torch.no_grad():
        logits, cache = subject.run(batch, read=[f"blocks.{l}.attn.hook_z" for l in range(L)] + later)
        margin = lambda x: x[:, 0] - torch.logsumexp(x[:, 1:], -1)  # noqa: E731  log-odds of entailment
        base = margin(logits)
        real = batch["attention_mask"].bool()
        for l in range(L):
            mean = cache[f"blocks.{l}.attn.hook_z"][real].mean(0)  # [head, d_head] over real tokens
            for h in range(H):
                def w(z, h=h, mean=mean):
                    z = z.clone()
                    z[:, :, h] = mean[h]
                    return z
                frozen = {s: cache[s] for s in later if int(s.split(".")[1]) > l}
                tot = margin(subject.run(batch, write={f"blocks.{l}.attn.hook_z": w})[0]) - base
                dirc = margin(subject.run(batch, write={f"blocks.{l}.attn.hook_z": w, **frozen})[0]) - base
                np.testing.assert_allclose(eff["total"][:, l, h], tot.numpy(), atol=1e-5)
                np.testing.assert_allclose(eff["direct"][:, l, h], dirc.numpy(), atol=1e-5)
    assert np.abs(eff["total"]).max() > 1e-2 and np.abs(eff["total"] - eff["direct"]).max() > 1e-3


def test_compare_with_a_reference_student_finds_the_damaged_heads(tmp_path):
    """`interp compare --reference`: a student copied from teacher layers [0, 2] with two heads damaged,
    against the undamaged copy as reference. Weight patching ranks the damaged heads first and gives every
    other component exactly 0; the tables name the question each view answers."""
    import json

    from interp.cli import main
    from interp.organisms import damaged_student, tiny_bert

    org = damaged_student(tiny_bert(3, seed=0, scale=3.0, head_scale=30.0), layers=[0, 2],
                          damage={(1, 0): 0.0, (1, 2): 0.5})
    for name, model in (("t", org.teacher), ("s", org.student), ("r", org.reference)):
        model.save_pretrained(tmp_path / name)
        org.tokenizer.save_pretrained(tmp_path / name)
    args = ["compare", "--teacher", str(tmp_path / "t"), "--student", str(tmp_path / "s"),
            "--reference", str(tmp_path / "r"), "--n", "24", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["attribution"]
    for view in (res["reference"]["weight"], res["weight_teacher"]):
        rows = view["margin"]
        key = "delta" if rows[0]["no_signal"] else "restored"
        heads = [r for r in rows if r["component"].startswith("head")]
        assert {r["component"].split("<")[0] for r in heads[:2]} == {"head 1.0", "head 1.2"}
        layer_rows = [r for r in rows if r["component"].startswith("layer 1")]
        assert all(abs(r[key]) == 0.0 for r in rows if r["component"].split("<")[0] not in
                   ("head 1.0", "head 1.2", "layer 1"))
        assert len(layer_rows) == 1 and abs(layer_rows[0][key]) > 0
    tables = (tmp_path / "out" / "tables.md").read_text()
    assert "## Reference (r) -> student, weight patching" in tables
    assert "Would the teacher's activation at this site fix the student?" in tables
    assert (tmp_path / "out" / "weight_patching_reference_margin.png").stat().st_size > 0


def test_labels_that_differ_only_in_case_pair_up(teacher, tokenizer):
    model = make_bert(n_layers=2, seed=3)
    model.config.id2label = {0: "Entailment", 1: " NEUTRAL", 2: "contradiction "}
    pair = make_pair(teacher, load_subject(model, tokenizer=tokenizer), layer_map={0: 0, 1: 2})
    assert pair.layer_map == {0: 0, 1: 2}


# --- dead and scaled heads ------------------------------------------------------------------------

SCALED = (2, 1)  # last layer: every other head's z and W_O are untouched, so their norm ratio is exactly 1


def _scale_output(model, layer: int, head: int, factor: float) -> None:
    """Scale a head's columns of the attention output projection: its write into the residual stream."""
    dense = model.bert.encoder.layer[layer].attention.output.dense
    d = dense.weight.shape[1] // model.config.num_attention_heads
    with torch.no_grad():
        dense.weight[:, head * d:(head + 1) * d] *= factor


def _write_rms_by_hand(model, subject, data) -> np.ndarray:
    """[layers, heads] RMS over real tokens of ||ctx_h @ W_O[:, h].T||, from the output projection's input."""
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    inputs = {}
    hooks = [model.bert.encoder.layer[l].attention.output.dense.register_forward_hook(
        lambda m, args, out, l=l: inputs.__setitem__(l, args[0])) for l in range(L)]
    batch = subject.tokenize(data)
    with torch.no_grad():
        model(**batch)
    for h in hooks:
        h.remove()
    real = batch["attention_mask"].bool()
    out = np.zeros((L, H))
    for l in range(L):
        w = model.bert.encoder.layer[l].attention.output.dense.weight.detach().double()  # [d_model, d_model]
        d = w.shape[1] // H
        for h in range(H):
            write = inputs[l][real][:, h * d:(h + 1) * d].double() @ w[:, h * d:(h + 1) * d].T  # [tokens, d_model]
            out[l, h] = float(write.pow(2).sum(1).mean().sqrt())
    return out


def _damaged(teacher, tokenizer, dead=ABLATED, scaled=SCALED):
    model = copy.deepcopy(teacher.model)
    if dead:
        _ablate_value(model, *dead)
    if scaled:
        _scale_output(model, *scaled, 0.01)
    return load_subject(model, tokenizer=tokenizer, name="damaged")


def test_a_dead_student_head_has_no_counterpart(teacher, tokenizer):
    student = _damaged(teacher, tokenizer, scaled=None)
    with pytest.warns(UserWarning, match=r"student \[1\.2\]"):
        hm = match_heads(teacher, student, make_pairs(30), layer_map={0: 0, 1: 1, 2: 2})
    assert hm.matches[ABLATED] is None and hm.dead == [ABLATED]
    assert np.isnan(hm.score[ABLATED]) and np.isnan(hm.z_cka[:, 4 + 2]).all()
    assert np.isfinite(np.delete(hm.z_cka, 4 + 2, axis=1)).all()
    for h in range(4):  # layer 0 is untouched
        assert hm.matches[(0, h)] == (0, h) and hm.score[(0, h)] == pytest.approx(1.0, abs=1e-6)
    entry = next(e for e in hm.to_json() if e["student"] == [1, 2])
    assert entry["teacher"] is None and entry["dead"] is True and entry["norm_ratio"] is None


def test_checkpoint_comparison_reports_a_dead_head_as_nan(teacher, tokenizer):
    rows = {r["head"]: r for r in compare_checkpoints(teacher, _damaged(teacher, tokenizer, scaled=None),
                                                      make_pairs(16), progress=False)}
    assert np.isnan(rows["1.2"]["z_cka"]) and rows["1.2"]["dead"] == ["b"]
    assert rows["0.0"]["z_cka"] == pytest.approx(1.0, abs=1e-6) and rows["0.0"]["dead"] == []
    assert all(np.isfinite(r["z_cka"]) for k, r in rows.items() if k != "1.2")


def test_a_head_scaled_towards_zero_is_flagged_by_its_norm_ratio(teacher, tokenizer):
    student = _damaged(teacher, tokenizer, dead=None)
    data = make_pairs(30)
    hm = match_heads(teacher, student, data, layer_map={0: 0, 1: 1, 2: 2})
    assert hm.matches[SCALED] == SCALED and hm.score[SCALED] > 0.98  # similarities ignore scale
    ref = _write_rms_by_hand(student.model, student, data) / _write_rms_by_hand(teacher.model, teacher, data)
    assert set(hm.norm_ratio) == set(hm.matches)
    for (l, h), r in hm.norm_ratio.items():
        assert r == pytest.approx(ref[l, h], rel=1e-6)
        assert r == pytest.approx(0.01 if (l, h) == SCALED else 1.0, rel=1e-5)
    assert hm.flagged == [SCALED]
    entry = next(e for e in hm.to_json() if e["student"] == list(SCALED))
    assert entry["flagged"] is True and entry["norm_ratio"] == pytest.approx(0.01, rel=1e-5)


def test_comparison_run_carries_dead_and_flagged_heads_to_the_tables(teacher, tokenizer, tmp_path):
    import json

    from interp.comparison_run import _head_map_from_json, _head_map_json, run_comparison
    from interp.data.hans_gen import generate_hans

    student = _damaged(teacher, tokenizer)
    with pytest.warns(UserWarning, match=r"student \[1\.2\]"):
        res = run_comparison(teacher, student, generate_hans(4, seed=0), tmp_path, n=12,
                             layer_map={0: 0, 1: 1, 2: 2}, progress=False)
    by_head = {tuple(m["student"]): m for m in res["head_map"]["matches"]}
    assert by_head[ABLATED]["dead"] and by_head[ABLATED]["teacher"] is None
    # the dead head upstream changes layer 2's input a little: the ratio is near, not at, 0.01
    assert by_head[SCALED]["flagged"] and by_head[SCALED]["norm_ratio"] == pytest.approx(0.01, rel=0.05)
    tables = (tmp_path / "tables.md").read_text()
    assert "| 1.2 | none (dead: constant output) |" in tables
    assert "| 2.1 | 2.1 | " in tables and f"| {by_head[SCALED]['norm_ratio']:.3g} **flagged** |" in tables
    back = _head_map_from_json(json.loads(json.dumps(res["head_map"])))
    assert back.flagged == [SCALED] and back.dead == [ABLATED]
    assert back.norm_ratio == pytest.approx({k: m["norm_ratio"] for k, m in by_head.items() if m["teacher"]})
    # NaN != NaN; steps return their stored (key-sorted) form, so a fresh and a resumed run agree exactly
    assert json.dumps(_head_map_json(back)["matches"], sort_keys=True) == json.dumps(res["head_map"]["matches"], sort_keys=True)
