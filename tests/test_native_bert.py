"""interp.native_bert against transformers' BertForSequenceClassification: the same checkpoint folder loads
to the same modules, weights, logits, sites, gradients and circuit scores, bit for bit; folders it does not
cover exactly load with transformers."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from interp.circuits import discover
from interp.contrast import LogOdds, make_contrast
from interp.subject import load_subject
from tests.conftest import make_bert, make_pairs

pytestmark = pytest.mark.usefixtures("one_thread")


def _save(model, tokenizer, path):
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def folder(tokenizer, tmp_path):
    return _save(make_bert(n_layers=3, seed=3), tokenizer, tmp_path / "bert")


def test_native_and_transformers_loads_are_the_same_model_bit_for_bit(folder):
    native, hf = load_subject(folder, device="cpu"), load_subject(folder, device="cpu", native=False)
    assert type(native.model).__name__ == "NativeBertForSequenceClassification"
    assert type(hf.model).__name__ == "BertForSequenceClassification"
    assert [n for n, _ in native.model.named_modules()] == [n for n, _ in hf.model.named_modules()]
    assert native.fingerprint == hf.fingerprint
    assert native.labels == hf.labels and not native.model.training
    padded = make_pairs(6, seed=1)                     # different lengths: padding and its mask
    same = [{**padded[0], "id": f"c{i}"} for i in range(3)]  # one length: no mask at all
    for examples in (padded, same):
        la, ca = native.run(examples, read=native.sites())
        lb, cb = hf.run(examples, read=hf.sites())
        assert torch.equal(la, lb)
        assert all(torch.equal(ca[s], cb[s]) for s in native.sites())
    # gradients: the same backward pass
    batch = native.tokenize(padded)
    for s in (native, hf):
        s.model.zero_grad()
        s.model(**batch).logits.square().sum().backward()
    grads = {n: p.grad for n, p in hf.model.named_parameters()}
    assert all(torch.equal(p.grad, grads[n]) for n, p in native.model.named_parameters())


def test_circuit_scores_through_the_engine_shortcuts_are_identical(folder):
    """Edge AtP and exact edge scores run the engine's shortcuts on the modules: identical results."""
    out = []
    for native in (True, False):
        s = load_subject(folder, device="cpu", native=native)
        contrast = make_contrast(s, make_pairs(6, seed=11), make_pairs(6, seed=12), metric=LogOdds(1), align="pad")
        out.append([discover(s, contrast, level="edge", method=m, allow_no_signal=True).scores for m in ("atp", "exact")])
    assert out[0] == out[1]


def _hf_class(path, **kw) -> str:
    return type(load_subject(path, device="cpu", **kw).model).__name__


def test_folders_it_does_not_cover_exactly_load_with_transformers(tokenizer, tmp_path):
    relu = make_bert(seed=1)
    relu.config.hidden_act = "relu"
    half = make_bert(seed=1).half()
    assert _hf_class(_save(relu, tokenizer, tmp_path / "relu")) == "BertForSequenceClassification"
    assert _hf_class(_save(half, tokenizer, tmp_path / "half")) == "BertForSequenceClassification"
    plain = _save(make_bert(seed=1), tokenizer, tmp_path / "plain")
    assert _hf_class(plain) == "NativeBertForSequenceClassification"
    assert _hf_class(plain, native=False) == "BertForSequenceClassification"
    assert _hf_class(plain, backend="nnsight") == "BertForSequenceClassification"
    assert _hf_class(plain, num_labels=3) == "NativeBertForSequenceClassification"
    (plain / "model.safetensors").rename(tmp_path / "weights")  # another weight format
    torch.save(make_bert(seed=1).state_dict(), plain / "pytorch_model.bin")
    assert _hf_class(plain) == "BertForSequenceClassification"
    cfg = json.loads((tmp_path / "relu" / "config.json").read_text())
    assert cfg["hidden_act"] == "relu"


def test_native_load_skips_transformers_modelling_code_and_draws_no_random_numbers(folder):
    """What it is for: no `transformers.modeling_utils` import (2-3 s on a 2-core CPU), and no change to the
    global random state (the weights are assigned, never initialised)."""
    code = (f"import sys, torch; from interp.loading import load_folder; s = torch.random.get_rng_state(); "
            f"m, _ = load_folder(__import__('pathlib').Path({str(folder)!r}), native=True); "
            f"print(type(m).__name__, 'transformers.modeling_utils' in sys.modules, "
            f"torch.equal(s, torch.random.get_rng_state()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["NativeBertForSequenceClassification", "False", "True"]


@pytest.mark.slow
def test_minilm_classifier_loads_natively_with_identical_sites(minilm_path, tmp_path):
    """The real MiniLM (6 layers, 12 heads) with a classifier head, saved and loaded both ways, on HANS pairs."""
    from interp.contrast import hans_pairs

    base = load_subject(minilm_path, device="cpu")            # bare encoder: transformers, a seeded new head
    folder = _save(base.model, base.tokenizer, tmp_path / "minilm_nli")
    native, hf = load_subject(folder, device="cpu"), load_subject(folder, device="cpu", native=False)
    assert type(native.model).__name__ == "NativeBertForSequenceClassification"
    clean, corrupt = hans_pairs(16, kind="break_overlap", seed=0, tokenizer=native.tokenizer)
    for examples in (clean, corrupt):
        la, ca = native.run(examples, read=native.sites())
        lb, cb = hf.run(examples, read=hf.sites())
        assert torch.equal(la, lb)
        assert all(torch.equal(ca[s], cb[s]) for s in native.sites())
