"""Two backends, one set of numbers: nnsight and the TransformerLens bridge against the model's own
outputs (output_hidden_states / output_attentions) and against the hooks backend.

Inputs are sentence pairs (token_type_ids 0 and 1) of different lengths (right padding), checked
by `_batch`, so a backend that dropped token_type_ids or the attention mask would fail.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import make_bert, make_distilbert, make_pairs, make_roberta, make_tokenizer, make_vit

from interp.arch import get_module
from interp.subject import load_subject

TINY = {"bert": make_bert, "distilbert": make_distilbert}
BACKENDS = ["nnsight", "tl"]
ATOL = 1e-5


def _batch(subject, data):
    batch = subject.tokenize(data)
    assert (batch["attention_mask"] == 0).any(), "test data must be padded"
    if "token_type_ids" in batch:
        assert batch["token_type_ids"].sum() > 0, "test data must be sentence pairs"
    return batch


def _subject(family: str, backend: str, model=None):
    model = model if model is not None else TINY[family]()
    tokenizer = make_tokenizer()
    if backend != "tl":
        return load_subject(model, tokenizer=tokenizer, backend=backend)
    from interp.backends.tl_bridge import bridge_from_hf
    from interp.subject import subject_from_bridge
    try:
        bridge = bridge_from_hf(model, make_tokenizer())  # one tokenizer object per bridge
    except NotImplementedError as e:
        if family == "distilbert":
            pytest.skip(f"TransformerLens bridge cannot wrap DistilBERT: {e}")
        raise
    return subject_from_bridge(bridge, tokenizer=tokenizer)


def _reference(model, batch):
    with torch.no_grad():
        return model(**batch, output_hidden_states=True, output_attentions=True)


def _max_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max((a[k] - b[k]).abs().max().item() for k in a)


# --- reading ------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", TINY)
def test_sites_match_model_outputs_and_hooks(family, backend, pairs):
    model = TINY[family]()
    hooks = load_subject(model, tokenizer=make_tokenizer())
    batch = _batch(hooks, pairs)
    ref = _reference(model, batch)
    with torch.no_grad():
        ref_logits, ref_cache = hooks.run(batch, read=hooks.sites())
    subject = _subject(family, backend, model=TINY[family]())  # same seed: same weights, separate object
    assert subject.backend == backend
    with torch.no_grad():
        logits, cache = subject.run(batch, read=subject.sites())
    torch.testing.assert_close(logits, ref.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(cache["embed"], ref.hidden_states[0], atol=ATOL, rtol=0)
    for layer in range(subject.n_layers):
        torch.testing.assert_close(cache[f"blocks.{layer}.hook_resid_post"], ref.hidden_states[layer + 1], atol=ATOL, rtol=0)
        torch.testing.assert_close(cache[f"blocks.{layer}.attn.hook_pattern"], ref.attentions[layer], atol=ATOL, rtol=0)
    assert set(cache) == set(ref_cache)
    for site, value in ref_cache.items():  # every site, canonical shapes, same values as the hooks backend
        assert cache[site].shape == value.shape, site
        torch.testing.assert_close(cache[site], value, atol=ATOL, rtol=0, msg=site)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", TINY)
def test_z_recombines_to_attn_out(family, backend, pairs):
    subject = _subject(family, backend)
    with torch.no_grad():
        _, cache = subject.run(_batch(subject, pairs), read=subject.expand(["blocks.*.attn.hook_z", "blocks.*.hook_attn_out"]))
    for layer in range(subject.n_layers):
        o_proj = get_module(subject.layers[layer], subject.arch.o_proj)
        W = o_proj.weight.view(subject.d_model, subject.n_heads, subject.d_head)  # [d_model, head, d_head]
        z = cache[f"blocks.{layer}.attn.hook_z"]  # [batch, pos, head, d_head]
        assert z.shape[2:] == (subject.n_heads, subject.d_head)
        per_head = torch.einsum("bphd,mhd->bphm", z.double(), W.double())  # [batch, pos, head, d_model]
        recombined = per_head.sum(2) + o_proj.bias.double()
        torch.testing.assert_close(recombined, cache[f"blocks.{layer}.hook_attn_out"].double(), atol=ATOL, rtol=0)


# --- writing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", TINY)
def test_patching_own_value_is_identity(family, backend, pairs):
    subject = _subject(family, backend)
    batch = _batch(subject, pairs)
    sites = [s for s in subject.sites()[:-1] if "pattern" not in s]
    with torch.no_grad():
        clean, cache = subject.run(batch, read=sites)
        patched, _ = subject.run(batch, write=cache)
        shifted, _ = subject.run(batch, write={sites[-1]: cache[sites[-1]] + 1.0})  # the writes do reach the model
    torch.testing.assert_close(patched, clean, atol=1e-6, rtol=0)
    assert (shifted - clean).abs().max() > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", TINY)
def test_patching_a_whole_layer_transplants_the_other_input(family, backend):
    """Writing resid_post of a layer from input B makes input A's logits equal B's."""
    subject = _subject(family, backend)
    data = make_pairs(8)
    a, b = subject.tokenize(data[:4]), subject.tokenize(data[4:])
    n = max(a["input_ids"].shape[1], b["input_ids"].shape[1])
    a = {k: torch.nn.functional.pad(v, (0, n - v.shape[1])) for k, v in a.items()}
    b = {k: torch.nn.functional.pad(v, (0, n - v.shape[1])) for k, v in b.items()}
    b["attention_mask"] = a["attention_mask"].clone()  # same mask: the layer's output fully determines the rest
    site, last = f"blocks.{subject.n_layers - 2}.hook_resid_post", f"blocks.{subject.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        _, cache_a = subject.run(a, read=[last])
        logits_b, cache_b = subject.run(b, read=[site, last])
        logits_ab, cache_ab = subject.run(a, write={site: cache_b[site]}, read=[last])
    assert (cache_a[last] - cache_b[last]).abs().max() > 0.1  # (random tiny models: logits barely move)
    torch.testing.assert_close(cache_ab[last], cache_b[last], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits_ab, logits_b, atol=ATOL, rtol=0)


def _ablate_head(z: torch.Tensor, head: int = 1) -> torch.Tensor:
    z = z.clone()
    z[:, :, head] = 0
    return z


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", TINY)
def test_writes_give_the_same_logits_as_hooks(family, backend, pairs):
    """Same writes (head ablation, scaling, a batch shuffle) -> same logits and downstream values as hooks."""
    model = TINY[family]()
    hooks = load_subject(model, tokenizer=make_tokenizer())
    batch = _batch(hooks, pairs)
    last = hooks.n_layers - 1
    write = {"blocks.0.attn.hook_z": _ablate_head,  # zero-ablate one head
             "blocks.0.hook_mlp_out": lambda x: 0.5 * x,
             f"blocks.{last}.hook_resid_mid": lambda x: x.flip(0)}
    read = ["blocks.0.attn.hook_z", f"blocks.{last}.hook_resid_post"]
    with torch.no_grad():
        clean, clean_cache = hooks.run(batch, read=read)
        ref, ref_cache = hooks.run(batch, read=read, write=write)
    assert (ref - clean).abs().max() > 1e-5  # random tiny models: logits barely move; the residual does
    assert (ref_cache[read[1]] - clean_cache[read[1]]).abs().max() > 0.1
    assert (ref_cache["blocks.0.attn.hook_z"][:, :, 1] == 0).all()  # values are read after the write
    subject = _subject(family, backend, model=TINY[family]())
    with torch.no_grad():
        logits, cache = subject.run(batch, read=read, write=write)
    torch.testing.assert_close(logits, ref, atol=ATOL, rtol=0)
    assert _max_diff(cache, ref_cache) <= ATOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_writes_are_refused(backend, pairs):
    subject = _subject("bert", backend)
    batch = _batch(subject, pairs)
    with pytest.raises(NotImplementedError, match="attn.hook_z"):
        subject.run(batch, write={"blocks.0.attn.hook_pattern": lambda p: p})
    with pytest.raises(ValueError, match="shape"):
        subject.run(batch, write={"blocks.0.hook_mlp_out": torch.zeros(3)})


# --- nnsight specifics --------------------------------------------------------------------------

def test_nnsight_wrapper_is_cached_per_subject(pairs):
    from interp.backends import nnsight_backend
    subject = _subject("bert", "nnsight")
    batch = _batch(subject, pairs)
    with torch.no_grad():
        subject.run(batch, read=["blocks.0.hook_resid_post"])
        first = nnsight_backend.wrapped(subject)
        subject.run(batch, read=["blocks.1.hook_resid_post"])
    assert nnsight_backend.wrapped(subject) is first


@pytest.mark.parametrize("first", ["nnsight", "interp.backends.nnsight_backend"])
def test_nnsight_import_order_does_not_break_beartype(first):
    """Importing beartype (transformer_lens, jaxtyping) after nnsight fails unless the backend handles it."""
    code = f"import {first}; import interp.backends.nnsight_backend; import beartype.door; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


# --- the real model -----------------------------------------------------------------------------

@pytest.mark.slow
def test_minilm_backends_match_model_outputs(minilm_path):
    subject = load_subject(minilm_path)
    data = [{"premise": "The doctor near the actor danced.", "hypothesis": "The actor danced."},
            {"premise": "The lawyer saw the senator.", "hypothesis": "The senator saw the lawyer who slept."}]
    batch = _batch(subject, data)
    ref = _reference(subject.model, batch)
    read = subject.expand(["blocks.*.hook_resid_post", "blocks.*.attn.hook_pattern", "blocks.*.attn.hook_z"])
    write = {"blocks.3.attn.hook_z": lambda z: _ablate_head(z, 5)}
    with torch.no_grad():
        ablated_ref, _ = subject.run(batch, write=write)
    assert (ablated_ref - ref.logits).abs().max() > 1e-5
    backends = {"nnsight": load_subject(subject.model, tokenizer=subject.tokenizer, backend="nnsight")}
    if "tl" in BACKENDS:
        import transformers as T

        from interp.backends.tl_bridge import bridge_from_hf
        from interp.subject import subject_from_bridge
        backends["tl"] = subject_from_bridge(bridge_from_hf(subject.model, T.AutoTokenizer.from_pretrained(minilm_path)),
                                             tokenizer=subject.tokenizer)
    for name, other in backends.items():
        with torch.no_grad():
            logits, cache = other.run(batch, read=read)
            ablated, _ = other.run(batch, write=write)
        torch.testing.assert_close(logits, ref.logits, atol=ATOL, rtol=0, msg=name)
        torch.testing.assert_close(ablated, ablated_ref, atol=ATOL, rtol=0, msg=name)
        for layer in range(6):
            torch.testing.assert_close(cache[f"blocks.{layer}.hook_resid_post"], ref.hidden_states[layer + 1], atol=ATOL, rtol=0)
            torch.testing.assert_close(cache[f"blocks.{layer}.attn.hook_pattern"], ref.attentions[layer], atol=ATOL, rtol=0)


# --- TransformerLens bridge specifics -----------------------------------------------------------

def test_tl_subject_from_bridge_keeps_the_hf_model_and_leaves_the_callers_alone(pairs):
    from transformer_lens.model_bridge import TransformerBridge

    from interp.backends.tl_bridge import bridge_from_hf
    from interp.subject import subject_from_bridge

    model, tokenizer = make_bert(), make_tokenizer()
    keys = list(model.state_dict())
    fingerprint = load_subject(model, tokenizer=tokenizer).fingerprint
    bridge = bridge_from_hf(model, tokenizer)
    assert isinstance(bridge, TransformerBridge) and not bridge.training
    assert list(model.state_dict()) == keys and tokenizer.eos_token is None  # caller's objects untouched
    subject = subject_from_bridge(bridge, tokenizer=tokenizer, name="tiny")
    assert subject.backend == "tl" and subject.bridge is bridge and subject.name == "tiny"
    assert type(subject.model).__name__ == "BertForSequenceClassification" and subject.model is bridge.original_model
    assert subject.fingerprint == fingerprint  # the bridge's aliases in state_dict don't change it
    via_load = load_subject(bridge, tokenizer=tokenizer)
    assert via_load.backend == "tl" and via_load.model is subject.model
    batch = _batch(subject, pairs)
    with torch.no_grad():  # the hooks backend still works on the bridged HF model
        tl_logits, _ = subject.run(batch)
        subject.backend = "hooks"
        hooks_logits, _ = subject.run(batch)
    torch.testing.assert_close(tl_logits, hooks_logits, atol=ATOL, rtol=0)


def test_tl_backend_on_a_plain_subject_builds_its_bridge(pairs):
    subject = load_subject(make_bert(), tokenizer=make_tokenizer(), backend="tl")
    batch = _batch(subject, pairs)
    with torch.no_grad():
        ref = subject.model(**batch).logits
        logits, _ = subject.run(batch)
    assert subject.bridge is not None
    torch.testing.assert_close(logits, ref, atol=ATOL, rtol=0)


def test_tl_carries_token_type_ids_and_handles_left_padding(pairs):
    subject = _subject("bert", "tl")
    model = make_bert()  # same weights, never bridged
    batch = _batch(subject, pairs)
    with torch.no_grad():
        without = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        ref = model(**batch, output_hidden_states=True)
        _, cache = subject.run(batch, read=["blocks.2.hook_resid_post"])
    assert (without.hidden_states[-1] - ref.hidden_states[-1]).abs().max() > 0.1  # the test is sensitive to them
    torch.testing.assert_close(cache["blocks.2.hook_resid_post"], ref.hidden_states[-1], atol=ATOL, rtol=0)

    def left(x):  # right padding -> left padding
        out = torch.zeros_like(x)
        for i, n in enumerate(batch["attention_mask"].sum(1).tolist()):
            out[i, x.shape[1] - n:] = x[i, :n]
        return out
    left_batch = {k: left(v) for k, v in batch.items()}
    with torch.no_grad():
        ref = model(**left_batch, output_hidden_states=True)
        logits, cache = subject.run(left_batch, read=["blocks.2.hook_resid_post"])
    torch.testing.assert_close(logits, ref.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(cache["blocks.2.hook_resid_post"], ref.hidden_states[-1], atol=ATOL, rtol=0)


def test_tl_refuses_distilbert_clearly():
    from interp.backends.tl_bridge import bridge_from_hf
    with pytest.raises(NotImplementedError, match="DistilBertForSequenceClassification.*backend='nnsight'"):
        bridge_from_hf(make_distilbert(), make_tokenizer())


@pytest.mark.parametrize("family,backend", [("roberta", "nnsight"), ("roberta", "tl"), ("vit", "nnsight")])
def test_roberta_and_vit_match_hooks(family, backend, pairs):
    model = make_roberta() if family == "roberta" else make_vit()
    hooks = load_subject(model, tokenizer=make_tokenizer() if family == "roberta" else None)
    if family == "roberta":
        batch = hooks.tokenize(pairs)
        assert "token_type_ids" not in batch  # RoBERTa has one token type: Subject.tokenize drops them
        assert (batch["attention_mask"] == 0).any()
    else:
        batch = {"pixel_values": torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))}
    write = {"blocks.1.attn.hook_z": _ablate_head, "blocks.0.hook_mlp_out": lambda x: 2 * x}
    with torch.no_grad():
        ref, ref_cache = hooks.run(batch, read=hooks.sites())
        ref_w, _ = hooks.run(batch, write=write)
        if backend == "tl":
            from interp.backends.tl_bridge import bridge_from_hf
            from interp.subject import subject_from_bridge
            subject = subject_from_bridge(bridge_from_hf(model, make_tokenizer()), tokenizer=hooks.tokenizer)
        else:
            subject = load_subject(model, tokenizer=hooks.tokenizer, backend=backend)
        logits, cache = subject.run(batch, read=subject.sites())
        logits_w, _ = subject.run(batch, write=write)
    assert (ref_w - ref).abs().max() > 1e-5
    torch.testing.assert_close(logits, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(logits_w, ref_w, atol=ATOL, rtol=0)
    assert _max_diff(cache, ref_cache) <= ATOL
