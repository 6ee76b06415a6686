"""interp.engine's exact shortcuts: finishing a forward pass from inside a layer, and the readout-only last layer,
against the model's own full forward pass (hook captures), for every supported family."""
from __future__ import annotations

import pytest
import torch
from conftest import make_bert, make_distilbert, make_pairs, make_roberta, make_tokenizer, make_vit

from interp import engine
from interp.contrast import LogOdds, make_contrast
from interp.engine import layer_inputs
from interp.patching import patch
from interp.subject import load_subject

pytestmark = pytest.mark.usefixtures("one_thread")
ATOL = 1e-5


def _subject_and_batch(family: str):
    """A tiny subject and a batch; text batches are padded, so masks matter."""
    if family == "vit":
        subject = load_subject(make_vit(n_layers=3, seed=2))
        return subject, {"pixel_values": torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))}
    model = {"bert": make_bert, "roberta": make_roberta, "distilbert": make_distilbert}[family](n_layers=3, seed=2)
    subject = load_subject(model, tokenizer=make_tokenizer())
    batch = subject.tokenize(make_pairs(6, seed=4))
    if family != "bert":
        batch.pop("token_type_ids", None)
    assert (batch["attention_mask"] == 0).any()  # padding present
    return subject, batch


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "vit"])
def test_resume_pieces_reproduce_the_forward_pass(family):
    subject, batch = _subject_and_batch(family)
    L = subject.n_layers
    kinds = ["hook_resid_post", "attn.hook_z", "hook_attn_out", "hook_mlp_out"]
    with torch.no_grad():
        logits, cache = subject.run(batch, read=[f"blocks.{l}.{k}" for l in range(L) for k in kinds])
        embed, kwargs = layer_inputs(subject, batch)
        for l in range(L):
            h_in = embed if l == 0 else cache[f"blocks.{l - 1}.hook_resid_post"]  # [B, pos, d]
            out = cache[f"blocks.{l}.hook_resid_post"]
            torch.testing.assert_close(engine.from_z(subject, l, h_in, cache[f"blocks.{l}.attn.hook_z"]), out,
                                       atol=ATOL, rtol=0)
            torch.testing.assert_close(engine.from_attn_out(subject, l, h_in, cache[f"blocks.{l}.hook_attn_out"]), out,
                                       atol=ATOL, rtol=0)
            mid = engine.resid_mid(subject, l, h_in, cache[f"blocks.{l}.hook_attn_out"])
            torch.testing.assert_close(engine.from_mlp_out(subject, l, mid, cache[f"blocks.{l}.hook_mlp_out"]), out,
                                       atol=ATOL, rtol=0)
        last_in = cache[f"blocks.{L - 2}.hook_resid_post"]
        readout = engine.readout_layer(subject, L - 1, last_in, kwargs.get("attention_mask"))
        assert readout.shape == (last_in.shape[0], 1, last_in.shape[2])
        torch.testing.assert_close(readout, cache[f"blocks.{L - 1}.hook_resid_post"][:, :1], atol=ATOL, rtol=0)
        for start in range(L + 1):
            h = embed if start == 0 else cache[f"blocks.{start - 1}.hook_resid_post"]
            torch.testing.assert_close(engine.finish(subject, start, h, kwargs), logits, atol=ATOL, rtol=0)


def test_readout_layer_respects_the_padding_mask():
    """Changing what sits at padded positions must not move the readout (keys there are masked)."""
    subject, batch = _subject_and_batch("bert")
    L = subject.n_layers
    with torch.no_grad():
        _, cache = subject.run(batch, read=[f"blocks.{L - 2}.hook_resid_post"])
        _, kwargs = layer_inputs(subject, batch)
        h = cache[f"blocks.{L - 2}.hook_resid_post"]
        pad = (batch["attention_mask"] == 0)[:, :, None]  # [B, pos, 1]
        a = engine.readout_layer(subject, L - 1, h, kwargs["attention_mask"])
        moved = torch.where(pad, 100 * torch.ones_like(h), h)  # new values at padded positions only
        b = engine.readout_layer(subject, L - 1, moved, kwargs["attention_mask"])
        c = engine.readout_layer(subject, L - 1, h, None)
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    assert (a - c).abs().max() > 1e-4  # without the mask the padded keys do change it: the check bites


@pytest.mark.parametrize("family", ["roberta", "distilbert"])
@pytest.mark.parametrize("component,per_position", [("head", False), ("head", True), ("mlp_out", False),
                                                    ("attn_out", True), ("resid", True)])
def test_patching_shortcuts_equal_plain_resumed_pass(family, component, per_position):
    subject, _ = _subject_and_batch(family)
    for p in subject.model.parameters():  # larger weights: effects well above float noise
        if p.dim() > 1:
            p.data.mul_(4.0)
    c = make_contrast(subject, make_pairs(5, seed=7), make_pairs(5, seed=8), metric=LogOdds(0), align="pad")
    # exactness of raw values: two random samples need not have a clean - corrupted gap
    fast = patch(subject, c, component, per_position, "denoise", max_rows=11, allow_no_signal=True)
    plain = patch(subject, c, component, per_position, "denoise", max_rows=11, shortcuts=False, allow_no_signal=True)
    assert fast.meta["shortcuts"] and not plain.meta["shortcuts"]
    assert (plain.raw - plain.corrupt_metric).abs().max() > 1e-3  # some patch moved the metric (float noise ~1e-7)
    torch.testing.assert_close(fast.raw, plain.raw, atol=ATOL, rtol=0)


def test_old_names_are_aliases_of_the_engine():
    """interp.resume and the hooks backend keep their old names, as the engine's own functions (one home)."""
    from interp import resume
    from interp.backends import hooks
    assert resume.supported is engine.shortcuts_supported and resume.from_outputs is engine.from_outputs
    assert resume.head_z is engine.head_z and resume.finish is engine.finish and resume.READOUT_POS == engine.READOUT_POS
    assert hooks.run is engine.run and hooks.run_from is engine.run_from
    assert hooks.installed is engine.installed and hooks.layer_inputs is engine.layer_inputs


def test_analyses_use_the_engine_not_a_backend():
    """No analysis module imports a backend's internals: they use interp.engine."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "interp"
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("backends/") or rel in ("subject.py", "resume.py"):
            continue  # backends themselves; subject dispatches to them; resume is the alias module
        text = path.read_text()
        if re.search(r"from interp\.backends\.hooks import|from interp\.backends import hooks|\bresume\.", text):
            offenders.append(rel)
    assert offenders == []


def test_run_reads_and_writes_z_like_the_model():
    """engine.run: reading z gives the output projection's input split per head; writing z changes attn_out by
    the output projection of the change (hand-computed), and nothing before that layer."""
    subject = load_subject(make_bert(), make_tokenizer(), device="cpu")
    batch = subject.tokenize(make_pairs(3))
    with torch.no_grad():
        logits, cache = engine.run(subject, batch, read=["blocks.1.attn.hook_z", "blocks.1.hook_attn_out", "blocks.0.hook_resid_post",
                                                      "logits"])
        torch.testing.assert_close(logits, subject.model(**batch).logits, atol=0, rtol=0)
        z = cache["blocks.1.attn.hook_z"]  # [batch, pos, head, d_head]
        assert z.shape[2:] == (subject.n_heads, subject.d_head)
        o_proj = engine.layer_module(subject, 1, subject.arch.o_proj)
        torch.testing.assert_close(o_proj(z.flatten(-2)), cache["blocks.1.hook_attn_out"], atol=1e-6, rtol=0)
        delta = torch.zeros_like(z)
        delta[:, :, 2] = 1.0
        _, patched = engine.run(subject, batch, read=["blocks.1.hook_attn_out", "blocks.0.hook_resid_post"],
                                write={"blocks.1.attn.hook_z": lambda v: v + delta})
        expected = cache["blocks.1.hook_attn_out"] + delta.flatten(-2) @ o_proj.weight.T
        torch.testing.assert_close(patched["blocks.1.hook_attn_out"], expected, atol=1e-5, rtol=0)
        assert torch.equal(patched["blocks.0.hook_resid_post"], cache["blocks.0.hook_resid_post"])
