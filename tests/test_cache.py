"""Subject.run as a notebook tool: input forms, read specs, the ActivationCache, CKA on Captures, devices."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_bert

from interp.cache import ActivationCache
from interp.capture import capture
from interp.cka import CKAGrid, cka_grid
from interp.cka_stats import bootstrap_cka
from interp.subject import load_subject, resolve_device


@pytest.fixture
def subject(tokenizer):
    return load_subject(make_bert(), tokenizer)


def _logits(subject, examples):
    with torch.no_grad():
        return subject.model(**subject.tokenize(examples)).logits


def test_run_accepts_strings_pairs_dicts_lists_and_batches(subject):
    pair = ("w1 w2 w3", "w4 w5")
    ex = {"premise": pair[0], "hypothesis": pair[1]}
    ref = _logits(subject, [ex])
    for inputs in (pair, ex, [ex], [pair], subject.tokenize([ex]), subject.tokenize([ex])["input_ids"]):
        if isinstance(inputs, torch.Tensor):  # input_ids alone: no segment ids, so only the shape is comparable
            assert subject.run(inputs)[0].shape == ref.shape
            continue
        logits, cache = subject.run(inputs)
        torch.testing.assert_close(logits, ref, atol=0, rtol=0)
    text_logits, cache = subject.run("w1 w2 w3")
    torch.testing.assert_close(text_logits, _logits(subject, [{"text": "w1 w2 w3"}]), atol=0, rtol=0)
    assert cache.examples == [{"text": "w1 w2 w3", "id": "ex0"}]
    assert subject.run(["w1 w2", "w3"])[0].shape[0] == 2  # a list of strings is several texts
    torch.testing.assert_close(cache.inputs["input_ids"], subject.tokenize([{"text": "w1 w2 w3"}])["input_ids"])


def test_read_takes_names_globs_and_predicates(subject):
    _, cache = subject.run("w1 w2", read="embed")  # one pattern, not the characters of "embed"
    assert list(cache) == ["embed"]
    _, cache = subject.run("w1 w2", read="blocks.*.hook_resid_post")
    assert list(cache) == [f"blocks.{l}.hook_resid_post" for l in range(3)]
    _, cache = subject.run("w1 w2", read=lambda s: s.endswith("hook_z"))
    assert list(cache) == [f"blocks.{l}.attn.hook_z" for l in range(3)]
    _, cache = subject.run("w1 w2", read=["logits", "blocks.1.*", lambda s: s == "embed"])
    assert list(cache)[0] == "embed" and list(cache)[-1] == "logits" and len(cache) == 2 + 6
    with pytest.raises(KeyError, match="selects no site"):
        subject.run("w1", read=lambda s: False)
    with pytest.raises(KeyError, match="Did you mean"):
        subject.run("w1", read="blocks.1.hook_resid_pots")


def test_cache_shorthand_equals_full_names_and_is_detached(subject, pairs):
    logits, cache = subject.run(pairs[:3], read=subject.sites())
    assert isinstance(cache, ActivationCache) and not logits.requires_grad
    short = {"z": "attn.hook_z", "pattern": "attn.hook_pattern", "attn_out": "hook_attn_out",
             "resid_mid": "hook_resid_mid", "mlp_out": "hook_mlp_out", "resid_post": "hook_resid_post"}
    for kind, full in short.items():
        for layer in range(subject.n_layers):
            assert cache[kind, layer] is cache[f"blocks.{layer}.{full}"]
        assert cache[kind, -1] is cache[f"blocks.2.{full}"]
        assert cache[full, 0] is cache[f"blocks.0.{full}"]  # the full kind works too
        stacked = cache.stack(kind)  # [layer, batch, ...]
        assert stacked.shape == (3, *cache[kind, 0].shape)
        torch.testing.assert_close(stacked[1], cache[kind, 1])
    assert cache["embed"].shape[:2] == cache["resid_post", 0].shape[:2]
    assert all(not v.requires_grad and v.grad_fn is None for v in cache.values())
    assert cache.to("cpu")["z", 1].device.type == "cpu"
    with pytest.raises(KeyError, match="needs a layer"):
        cache["z"]
    with pytest.raises(KeyError, match="out of range"):
        cache["z", 3]
    _, part = subject.run(pairs[:3], read="blocks.0.attn.hook_z")
    with pytest.raises(KeyError, match="not read"):
        part.stack("z")


def test_grad_true_keeps_the_graph(subject, pairs):
    logits, cache = subject.run(pairs[:2], read="blocks.1.hook_resid_post", write={"blocks.1.hook_resid_post": lambda v: v},
                                grad=True)
    (g,) = torch.autograd.grad(logits.sum(), [cache["resid_post", 1]])
    assert g.shape == cache["resid_post", 1].shape and g.abs().sum() > 0


def test_cka_grid_takes_captures(tokenizer, pairs):
    teacher, student = load_subject(make_bert(3), tokenizer), load_subject(make_bert(2, seed=1), tokenizer)
    ca = capture(teacher, pairs, "blocks.*.hook_resid_post", pool="mean", progress=False)
    cb = capture(student, pairs, "blocks.*.hook_resid_post", pool="mean", progress=False)
    old = cka_grid([ca.acts[s] for s in ca.acts], [cb.acts[s] for s in cb.acts])["xy"]
    grid = cka_grid(ca, cb)
    assert isinstance(grid, CKAGrid)
    np.testing.assert_array_equal(grid["xy"], old)
    np.testing.assert_array_equal(np.asarray(grid), old)
    assert grid.x_labels == list(ca.acts) and grid.y_labels == list(cb.acts)
    assert grid["blocks.2.hook_resid_post", "blocks.0.hook_resid_post"] == old[2, 0]
    assert "CKAGrid" in repr(grid)
    boot = bootstrap_cka(ca, cb, n_boot=5)
    np.testing.assert_array_equal(boot["estimate"], old)
    other = capture(student, pairs[1:] + pairs[:1], "blocks.*.hook_resid_post", pool="mean", progress=False)
    with pytest.raises(ValueError, match="different examples"):
        cka_grid(ca, other)
    with pytest.raises(ValueError, match="different examples"):
        bootstrap_cka(ca, other, n_boot=5)


def test_device_auto(monkeypatch):
    assert resolve_device("auto") == torch.device("cpu" if not torch.cuda.is_available() else "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_inputs_follow_the_model(subject):
    batch, _ = subject.as_batch({"premise": "w1", "hypothesis": "w2"})
    assert all(v.device == subject.device for v in batch.values())
