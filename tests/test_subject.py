"""Subject and the hooks backend against the model's own outputs (output_hidden_states / attentions)."""
from __future__ import annotations

import pytest
import torch
from conftest import make_bert, make_distilbert, make_pairs, make_vit

from interp import engine
from interp.arch import get_module
from interp.subject import load_subject

TINY = {"bert": make_bert, "distilbert": make_distilbert}


def _reference(model, batch):
    with torch.no_grad():
        return model(**batch, output_hidden_states=True, output_attentions=True)


@pytest.mark.parametrize("family", TINY)
def test_sites_match_model_outputs(family, tokenizer, pairs):
    subject = load_subject(TINY[family](), tokenizer=tokenizer)
    batch = subject.tokenize(pairs)
    with torch.no_grad():
        logits, cache = subject.run(batch, read=subject.sites())
    ref = _reference(subject.model, batch)
    torch.testing.assert_close(logits, ref.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(cache["embed"], ref.hidden_states[0], atol=1e-5, rtol=0)
    for layer in range(subject.n_layers):
        torch.testing.assert_close(cache[f"blocks.{layer}.hook_resid_post"], ref.hidden_states[layer + 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(cache[f"blocks.{layer}.attn.hook_pattern"], ref.attentions[layer], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", TINY)
def test_z_recombines_to_attn_out(family, tokenizer, pairs):
    subject = load_subject(TINY[family](), tokenizer=tokenizer)
    with torch.no_grad():
        _, cache = subject.run(subject.tokenize(pairs), read=subject.expand(["blocks.*.attn.hook_z", "blocks.*.hook_attn_out"]))
    for layer in range(subject.n_layers):
        o_proj = get_module(subject.layers[layer], subject.arch.o_proj)
        W = o_proj.weight.view(subject.d_model, subject.n_heads, subject.d_head)  # [d_model, head, d_head]
        z = cache[f"blocks.{layer}.attn.hook_z"]  # [batch, pos, head, d_head]
        per_head = torch.einsum("bphd,mhd->bphm", z.double(), W.double())  # [batch, pos, head, d_model]
        recombined = per_head.sum(2) + o_proj.bias.double()
        torch.testing.assert_close(recombined, cache[f"blocks.{layer}.hook_attn_out"].double(), atol=1e-5, rtol=0)


def test_patching_own_value_is_identity(tokenizer, pairs):
    subject = load_subject(make_bert(), tokenizer=tokenizer)
    batch = subject.tokenize(pairs)
    with torch.no_grad():
        clean, cache = subject.run(batch, read=subject.sites()[:-1])
        patched, _ = subject.run(batch, write={k: v for k, v in cache.items() if "pattern" not in k})
    torch.testing.assert_close(patched, clean, atol=1e-6, rtol=0)


def test_patching_a_whole_layer_transplants_the_other_input(tokenizer):
    """Writing resid_post of layer l from input B makes input A's logits equal B's."""
    subject = load_subject(make_bert(), tokenizer=tokenizer)
    data = make_pairs(8)
    a = subject.tokenize(data[:4])
    b = subject.tokenize(data[4:], max_length=a["input_ids"].shape[1])
    b = {k: torch.nn.functional.pad(v, (0, a["input_ids"].shape[1] - v.shape[1])) for k, v in b.items()}
    a = {k: torch.nn.functional.pad(v, (0, b["input_ids"].shape[1] - v.shape[1])) for k, v in a.items()}
    b["attention_mask"] = a["attention_mask"].clone()  # same mask: the layer's output fully determines the rest
    with torch.no_grad():
        logits_b, cache_b = subject.run(b, read=["blocks.1.hook_resid_post"])
        logits_ab, _ = subject.run(a, write={"blocks.1.hook_resid_post": cache_b["blocks.1.hook_resid_post"]})
    torch.testing.assert_close(logits_ab, logits_b, atol=1e-5, rtol=0)


def test_run_from_layer_matches_full_forward(tokenizer, pairs):
    subject = load_subject(make_distilbert(n_layers=3), tokenizer=tokenizer)
    batch = subject.tokenize(pairs)
    with torch.no_grad():
        logits, cache = subject.run(batch, read=["blocks.0.hook_resid_post", "blocks.2.attn.hook_z"])
        h0, kwargs = engine.layer_inputs(subject, batch)
        resumed, cache2 = engine.run_from(subject, 1, cache["blocks.0.hook_resid_post"], kwargs, read=["blocks.2.attn.hook_z"])
        from_embed, _ = engine.run_from(subject, 0, h0, kwargs)
    torch.testing.assert_close(resumed, logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(from_embed, logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(cache2["blocks.2.attn.hook_z"], cache["blocks.2.attn.hook_z"], atol=1e-5, rtol=0)


# --- bad input --------------------------------------------------------------------------------

def test_train_mode_is_refused(tokenizer, pairs):
    subject = load_subject(make_bert(), tokenizer=tokenizer)
    subject.model.train()
    with pytest.raises(RuntimeError, match="train mode.*eval"):
        subject.run(subject.tokenize(pairs))


def test_one_layer_in_train_mode_is_refused_by_name(tokenizer, pairs):
    model = make_bert()
    assert model.config.hidden_dropout_prob > 0  # in train mode the layer's dropout is live
    subject = load_subject(model, tokenizer=tokenizer)
    batch = subject.tokenize(pairs)
    with torch.no_grad():
        clean = subject.run(batch)[0]
    model.bert.encoder.layer[2].train()
    n_under = len(list(model.bert.encoder.layer[2].modules())) - 1
    with torch.no_grad():  # why it matters: two identical calls differ
        assert not torch.allclose(model(**batch).logits, model(**batch).logits)
    with pytest.raises(RuntimeError, match=rf"bert\.encoder\.layer\.2 \(and {n_under} submodules under it\) is in "
                                           r"train mode.*subject\.model\.eval\(\)"):
        subject.run(batch)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(subject.run(batch)[0], clean, atol=0, rtol=0)


def test_non_eager_attention_is_refused(tokenizer):
    model = make_bert()
    model.set_attn_implementation("sdpa")
    with pytest.raises(RuntimeError, match="eager"):
        load_subject(model, tokenizer=tokenizer)


def test_unknown_architecture_is_refused(tokenizer):
    with pytest.raises(TypeError, match="Unsupported architecture 'Linear'"):
        load_subject(torch.nn.Linear(2, 2), tokenizer=tokenizer)


def test_wrong_tokenizer_is_refused(minilm_path):
    import transformers as T
    with pytest.raises(ValueError, match="wrong tokenizer"):
        load_subject(make_bert(), tokenizer=T.AutoTokenizer.from_pretrained(minilm_path))


def test_unknown_site_suggests_nearest(tokenizer, pairs):
    subject = load_subject(make_bert(), tokenizer=tokenizer)
    with pytest.raises(KeyError, match="blocks.1.hook_resid_post"):
        subject.run(subject.tokenize(pairs), read=["blocks.1.hook_resid_pots"])
    with pytest.raises(KeyError, match="out of range"):
        subject.run(subject.tokenize(pairs), read=["blocks.7.hook_resid_post"])


def test_empty_data_is_refused(tokenizer):
    from interp.capture import capture
    subject = load_subject(make_bert(), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="empty"):
        capture(subject, [], "blocks.*.hook_resid_post", progress=False)


@pytest.mark.slow
def test_minilm_sites_match_model_outputs(minilm_path):
    subject = load_subject(minilm_path)
    assert (subject.n_layers, subject.n_heads, subject.d_model, subject.d_head) == (6, 12, 384, 32)
    data = [{"premise": "The doctor near the actor danced.", "hypothesis": "The actor danced."},
            {"premise": "The lawyer saw the senator.", "hypothesis": "The senator saw the lawyer who slept."}]
    batch = subject.tokenize(data)
    assert batch["token_type_ids"].sum() > 0 and (batch["attention_mask"] == 0).any()
    with torch.no_grad():
        logits, cache = subject.run(batch, read=subject.sites())
    ref = _reference(subject.model, batch)
    torch.testing.assert_close(logits, ref.logits, atol=1e-5, rtol=0)
    for layer in range(6):
        torch.testing.assert_close(cache[f"blocks.{layer}.hook_resid_post"], ref.hidden_states[layer + 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(cache[f"blocks.{layer}.attn.hook_pattern"], ref.attentions[layer], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_bare_encoder_gets_the_same_new_head_every_load(minilm_path):
    a, b = load_subject(minilm_path), load_subject(minilm_path)
    assert a.fingerprint == b.fingerprint
    assert a.labels == ["entailment", "neutral", "contradiction"]


def test_vit_sites_match_model_outputs():
    subject = load_subject(make_vit())
    images = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    batch = subject.tokenize([{"pixel_values": im} for im in images])
    with torch.no_grad():
        logits, cache = subject.run(batch, read=subject.sites())
        ref = _reference(subject.model, batch)
        h0, kwargs = engine.layer_inputs(subject, batch)
        resumed, _ = engine.run_from(subject, 1, cache["blocks.0.hook_resid_post"], kwargs)
    assert "blocks.0.hook_resid_mid" not in subject.sites()  # pre-LN: no post-LN resid_mid module
    torch.testing.assert_close(logits, ref.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(resumed, ref.logits, atol=1e-5, rtol=0)
    for layer in range(2):
        torch.testing.assert_close(cache[f"blocks.{layer}.hook_resid_post"], ref.hidden_states[layer + 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(cache[f"blocks.{layer}.attn.hook_pattern"], ref.attentions[layer], atol=1e-5, rtol=0)


def test_model_fingerprint_is_sha256_of_names_shapes_and_bytes():
    """Against the textbook digest (a copy of every parameter's bytes), with 0-d and zero-size tensors."""
    import hashlib

    import torch

    from interp.loading import model_fingerprint

    m = torch.nn.Module()
    m.w = torch.nn.Parameter(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))
    m.s = torch.nn.Parameter(torch.tensor(2.5))
    m.e = torch.nn.Parameter(torch.zeros(0, 3))
    m.register_buffer("b", torch.arange(5))
    h = hashlib.sha256()
    for name, p in sorted(m.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(p.numpy().tobytes())
    assert model_fingerprint(m) == h.hexdigest()[:16]
