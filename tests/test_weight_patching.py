"""Weight patching: batched sweep against one full forward per component with the parameters swapped by
state-dict name, and the known-answer organisms of interp.organisms."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import make_vit

from interp.compare import entailment_margin, restoration
from interp.cross_patch import cross_patch
from interp.organisms import damaged_student, tiny_bert, tiny_pairs, tiny_tokenizer
from interp.pair import HeadMap, Pair
from interp.subject import load_subject
from interp.weight_patching import components, weight_patch

pytestmark = pytest.mark.usefixtures("one_thread")


def _jitter(model, seed: int, scale: float = 0.3):
    """Every parameter moved by relative noise: no component is left equal to its source."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * p.abs().mean() * torch.randn(p.shape, generator=g))
    return model.eval()


def _names(family: str, kind: str, layer: int, head: int, d_head: int) -> list[tuple[str, tuple]]:
    """Independent map from a component to (state-dict name, index) of what it owns."""
    rows = slice(head * d_head, (head + 1) * d_head)
    if family == "bert":
        p = f"bert.encoder.layer.{layer}."
        qkv, o = [p + f"attention.self.{x}" for x in ("query", "key", "value")], p + "attention.output.dense"
        mods = {"mlp": [p + "intermediate.dense", p + "output.dense"], "ln_attn": [p + "attention.output.LayerNorm"],
                "ln_mlp": [p + "output.LayerNorm"]}
    else:  # vit
        p = f"vit.layers.{layer}."
        qkv, o = [p + f"attention.{x}_proj" for x in "qkv"], p + "attention.o_proj"
        mods = {"mlp": [p + "mlp.fc1", p + "mlp.fc2"], "ln_attn": [p + "layernorm_before"],
                "ln_mlp": [p + "layernorm_after"]}
    if kind == "head":
        return [(f"{m}.{w}", (rows,)) for m in qkv for w in ("weight", "bias")] + [(f"{o}.weight", (slice(None), rows))]
    return [(f"{m}.{w}", (slice(None),)) for m in mods[kind] for w in ("weight", "bias")]


def _swapped_model(base, source, family: str, c, d_head: int):
    model = copy.deepcopy(base.model)
    sd, src = model.state_dict(), source.model.state_dict()
    if c.kind in ("embed", "readout", "layer"):
        if c.kind == "layer":
            pre = {"bert": "bert.encoder.layer.", "vit": "vit.layers."}[family]
            pairs = [(k, pre + f"{c.src_layer}." + k[len(pre + f"{c.layer}."):]) for k in sd
                     if k.startswith(pre + f"{c.layer}.")]
        else:
            emb = {"bert": "bert.embeddings.", "vit": "vit.embeddings."}[family]
            inner = {"bert": ("bert.embeddings.", "bert.encoder."), "vit": ("vit.embeddings.", "vit.layers.")}[family]
            keys = [k for k in sd if k.startswith(emb)] if c.kind == "embed" else \
                [k for k in sd if not k.startswith(inner) and "position_ids" not in k]
            pairs = [(k, k) for k in keys]
        with torch.no_grad():
            for k, ks in pairs:
                sd[k].copy_(src[ks])
        return model.eval()
    dst = _names(family, c.kind, c.layer, c.head, d_head)
    srcn = _names(family, c.kind, c.src_layer, c.src_head, d_head)
    with torch.no_grad():
        for (k, idx), (ks, idxs) in zip(dst, srcn):
            sd[k][idx] = src[ks][idxs]
    return model.eval()


def _check_against_full_forwards(base, source, data, family, kinds, forward):
    res = weight_patch(base, source, data, kinds=kinds, batch_size=5, max_rows=7, progress=False)
    assert res["unchanged"] == []  # jittered: every component differs
    comps = res["components"]
    assert {c.kind for c in comps} == set(kinds)
    for c in comps:
        swapped = _swapped_model(base, source, family, c, base.d_head)
        with torch.no_grad():
            ref = forward(swapped)
        torch.testing.assert_close(res["patched"][c.label], ref, atol=2e-5, rtol=1e-5, msg=c.label)
        assert (res["patched"][c.label] - res["student"]).abs().max() > 1e-3, c.label  # a real change


KINDS = ("head", "mlp", "ln_attn", "ln_mlp", "layer", "embed", "readout")


def test_bert_sweep_equals_full_forwards_skip_layer():
    """Student from teacher layers [0, 2, 4], all weights jittered: every component's swap equals a full
    forward of the student with that component's parameters copied from the mapped teacher layer."""
    from interp.train.students import student_from_teacher_layers

    tok = tiny_tokenizer()
    teacher_m = tiny_bert(6, seed=0, scale=3.0, head_scale=30.0)
    student_m = _jitter(student_from_teacher_layers(teacher_m, [0, 2, 4]), seed=1)
    teacher = load_subject(teacher_m, tokenizer=tok, name="teacher")
    student = load_subject(student_m, tokenizer=tok, name="student")
    data = tiny_pairs(11, seed=3)
    batch = student.tokenize(data)
    _check_against_full_forwards(student, teacher, data, "bert", KINDS, lambda m: m(**batch).logits)
    assert {c.src_layer for c in components(student, teacher) if c.kind == "layer"} == {0, 2, 4}


def test_vit_sweep_equals_full_forwards():
    """Pre-LayerNorm path (LayerNorms before attention and MLP), same-depth checkpoints."""
    base = load_subject(make_vit(seed=0), name="a")
    source = load_subject(_jitter(make_vit(seed=0), seed=5, scale=1.0), name="b")
    g = torch.Generator().manual_seed(0)
    data = [{"id": f"i{i}", "pixel_values": torch.randn(3, 16, 16, generator=g)} for i in range(6)]
    pix = torch.stack([d["pixel_values"] for d in data])
    _check_against_full_forwards(base, source, data, "vit", KINDS, lambda m: m(pixel_values=pix).logits)


def _margins(model, batch) -> float:
    m = entailment_margin(["entailment", "neutral", "contradiction"])
    with torch.no_grad():
        return float(m(model(**batch).logits).double().mean())


def _fine_heads(rows):
    """Head rows ranked by |share| (weight patching asks which parameters matter, in either direction)."""
    return sorted([r for r in rows if r["component"].startswith("head")], key=lambda r: -abs(r["restored"]))


@pytest.mark.parametrize("layers,damage", [
    ([0, 2, 4], {(1, 1): 0.0, (1, 3): 0.5}),        # skip-layer, damage in one layer
    ([0, 2, 4], {(0, 2): 0.0, (2, 1): 0.5}),        # skip-layer, damage in two layers
])
def test_weight_patching_recovers_planted_damage(layers, damage):
    org = damaged_student(layers=layers, damage=damage)
    tok = org.tokenizer
    student = load_subject(org.student, tokenizer=tok, name="student")
    data = tiny_pairs(64, seed=1)
    batch = student.tokenize(data)
    m_student = _margins(org.student, batch)
    margin = entailment_margin(student.labels)
    for source_model in (org.teacher, org.reference):
        source = load_subject(source_model, tokenizer=tok, name="source")
        m_source = _margins(source_model, batch)
        undo = {h: (_margins(org.repaired(h), batch) - m_student) / (m_source - m_student) for h in damage}
        rows = restoration(weight_patch(student, source, data, progress=False), margin)
        heads = _fine_heads(rows)
        expected = sorted(damage, key=lambda h: -abs(undo[h]))
        got = [r["component"].split(" ")[1].split("<")[0] for r in heads[:2]]
        assert got == [f"{l}.{h}" for l, h in expected]
        for r, h in zip(heads[:2], expected):
            assert r["restored"] == pytest.approx(undo[h], abs=1e-4)
        for r in heads[2:]:
            assert abs(r["restored"]) < 1e-6
        assert abs(abs(undo[expected[1]]) - 0) > 1e-3  # both repairs really move the metric


def test_same_depth_two_layer_damage_weight_vs_activation_views():
    """Same-depth copy, damage in layers 0 and 2: weight patching puts both damaged heads above every
    undamaged one; activation patching (teacher z into the student) credits undamaged heads too, and
    its direct effect equals a full forward with every later attn_out and mlp_out held at base."""
    damage = {(0, 1): 0.0, (2, 3): 0.0}
    org = damaged_student(tiny_bert(3, seed=2, scale=3.0, head_scale=30.0), layers=None, damage=damage)
    tok = org.tokenizer
    teacher = load_subject(org.teacher, tokenizer=tok, name="teacher")
    student = load_subject(org.student, tokenizer=tok, name="student")
    data = tiny_pairs(48, seed=4)
    margin = entailment_margin(student.labels)
    w_rows = _fine_heads(restoration(weight_patch(student, teacher, data, progress=False), margin))
    top = {r["component"].split(" ")[1].split("<")[0] for r in w_rows[:2]}
    assert top == {"0.1", "2.3"}
    assert all(abs(r["restored"]) < 1e-6 for r in w_rows[2:])
    heads = [(l, h) for l in range(3) for h in range(4)]
    hm = HeadMap({k: k for k in heads}, {k: 1.0 for k in heads}, np.eye(12), np.eye(12))
    act = cross_patch(Pair(teacher, student, {0: 0, 1: 1, 2: 2}, hm), data, progress=False, direct=True)
    total = {r["component"]: r["restored"] for r in restoration(act, margin)}
    # an undamaged head after the damaged layer-0 head sees a different input in the teacher: nonzero share
    assert max(abs(total[f"head 1.{h}<-T1.{h}"]) for h in range(4)) > 1e-3
    # direct effect by hand: z of head 1.0 from the teacher, later layers' outputs frozen at the student's
    b = student.tokenize(data)
    later = [f"blocks.2.{k}" for k in ("hook_attn_out", "hook_mlp_out")]
    with torch.no_grad():
        _, tc = teacher.run(b, read=["blocks.1.attn.hook_z"])
        _, sc = student.run(b, read=later)

        def w(z):
            z = z.clone()
            z[:, :, 0] = tc["blocks.1.attn.hook_z"][:, :, 0]
            return z
        ref = student.run(b, write={"blocks.1.attn.hook_z": w, **{s: sc[s] for s in later}})[0]
    torch.testing.assert_close(act["patched_direct"]["head 1.0<-T1.0"], ref, atol=1e-5, rtol=0)
    # the last layer has no later components: direct equals total
    torch.testing.assert_close(act["patched_direct"]["head 2.3<-T2.3"], act["patched"]["head 2.3<-T2.3"],
                               atol=1e-6, rtol=0)


def test_weight_patching_refuses_mismatched_models():
    tok = tiny_tokenizer()
    a = load_subject(tiny_bert(3, seed=0), tokenizer=tok)
    narrow = load_subject(tiny_bert(3, d=16, heads=2, seed=0), tokenizer=tok)
    with pytest.raises(ValueError, match="equal widths"):
        weight_patch(a, narrow, tiny_pairs(4), progress=False)
    deeper = load_subject(tiny_bert(5, seed=0), tokenizer=tok)
    with pytest.raises(ValueError, match="layer_map"):
        weight_patch(a, deeper, tiny_pairs(4), progress=False)
    with pytest.raises(ValueError, match="(?i)no examples"):
        weight_patch(a, load_subject(tiny_bert(3, seed=1), tokenizer=tok), [], progress=False)


def test_cross_patch_shortcuts_equal_hooked_forwards(monkeypatch):
    """cross_patch through the engine's shortcuts (z and resid_post patches, direct effects at the readout
    row only) equals the hooked forwards it replaces, for every head and layer, total and direct, on padded
    pairs."""
    from interp import engine

    org = damaged_student(tiny_bert(3, seed=2, scale=3.0, head_scale=30.0), layers=None, damage={(0, 1): 0.0})
    teacher = load_subject(org.teacher, tokenizer=org.tokenizer, name="teacher")
    student = load_subject(org.student, tokenizer=org.tokenizer, name="student")
    heads = [(l, h) for l in range(3) for h in range(4)]
    pair = Pair(teacher, student, {0: 0, 1: 1, 2: 2}, HeadMap({k: k for k in heads}, {k: 1.0 for k in heads},
                                                               np.eye(12), np.eye(12)))
    data = tiny_pairs(12, seed=5)
    assert engine.shortcuts_supported(student)
    fast = cross_patch(pair, data, progress=False, direct=True, batch_size=5)
    monkeypatch.setattr(engine, "shortcuts_supported", lambda subject: False)
    slow = cross_patch(pair, data, progress=False, direct=True, batch_size=5)
    assert set(fast["patched"]) == set(slow["patched"]) and any(k.startswith("layer") for k in fast["patched"])
    for key in ("patched", "patched_direct"):
        for k in slow[key]:
            torch.testing.assert_close(fast[key][k], slow[key][k], atol=1e-5, rtol=0)
    moved = max(float((fast["patched_direct"][k] - fast["student"]).abs().max()) for k in fast["patched_direct"])
    assert moved > 1e-2  # the patches change the logits: the comparison is not between two unpatched runs
