"""interp.native_bert and interp.native_tokenizer against transformers' BertForSequenceClassification and
BertTokenizer: the same checkpoint folder loads to the same modules, weights, logits, sites, gradients and
circuit scores, bit for bit, and the same token ids; folders they do not cover exactly load with transformers."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from interp import native_tokenizer
from interp.circuits import discover
from interp.contrast import LogOdds, hans_pairs, make_contrast
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
    assert type(native.tokenizer).__name__ == "NativeTokenizer" and type(hf.tokenizer).__name__ == "BertTokenizer"
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


def _model_class(path, **kw) -> str:
    return type(load_subject(path, device="cpu", **kw).model).__name__


def test_folders_it_does_not_cover_exactly_load_with_transformers(tokenizer, tmp_path):
    relu = make_bert(seed=1)
    relu.config.hidden_act = "relu"
    half = make_bert(seed=1).half()
    assert _model_class(_save(relu, tokenizer, tmp_path / "relu")) == "BertForSequenceClassification"
    assert _model_class(_save(half, tokenizer, tmp_path / "half")) == "BertForSequenceClassification"
    plain = _save(make_bert(seed=1), tokenizer, tmp_path / "plain")
    assert _model_class(plain) == "NativeBertForSequenceClassification"
    assert _model_class(plain, native=False) == "BertForSequenceClassification"
    assert _model_class(plain, backend="nnsight") == "BertForSequenceClassification"
    assert _model_class(plain, num_labels=3) == "NativeBertForSequenceClassification"
    (plain / "model.safetensors").rename(tmp_path / "weights")  # another weight format
    torch.save(make_bert(seed=1).state_dict(), plain / "pytorch_model.bin")
    assert _model_class(plain) == "BertForSequenceClassification"
    cfg = json.loads((tmp_path / "relu" / "config.json").read_text())
    assert cfg["hidden_act"] == "relu"
    # a config.json that leaves BertConfig's defaults out loads with them, the same model
    slim = _save(make_bert(seed=1), tokenizer, tmp_path / "slim")
    cfg = json.loads((slim / "config.json").read_text())
    for key in ("layer_norm_eps", "hidden_dropout_prob", "type_vocab_size"):
        cfg.pop(key)
    (slim / "config.json").write_text(json.dumps(cfg))
    s = load_subject(slim, device="cpu")
    assert type(s.model).__name__ == "NativeBertForSequenceClassification"
    ref = load_subject(slim, device="cpu", native=False)
    assert torch.equal(s.run(make_pairs(4))[0], ref.run(make_pairs(4))[0])


def test_native_load_imports_no_transformers_and_draws_no_random_numbers(folder):
    """What it is for: no `transformers` import (3-4 s on a 2-core CPU with its modelling and tokenizer code),
    and no change to the global random state (the weights are assigned, never initialised)."""
    code = (f"import sys, torch; from interp.loading import load_folder; s = torch.random.get_rng_state(); "
            f"m, t = load_folder(__import__('pathlib').Path({str(folder)!r}), native=True); "
            f"print(type(m).__name__, type(t).__name__, 'transformers' in sys.modules, "
            f"torch.equal(s, torch.random.get_rng_state()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["NativeBertForSequenceClassification", "NativeTokenizer", "False", "True"]


ODD = ["Héllo, WORLD!! naïve café — ünïcödé", "  spaces\tand\nnewlines ", "[CLS] [SEP] [MASK] w1 [PAD]", "数字 和 中文",
       "emoji 😀", "w3 " * 300, ""]


def _same_tokens(ours, theirs, texts: list[str], pairs: list[str]) -> None:
    """Every call the library makes (and the usual lookups) gives what transformers' tokenizer gives."""
    assert len(ours) == len(theirs) and ours.get_vocab() == theirs.get_vocab()
    for kind in ("pad", "sep", "cls", "unk", "mask"):
        assert getattr(ours, f"{kind}_token_id") == getattr(theirs, f"{kind}_token_id")
    for kw in (dict(padding=True, truncation=True, max_length=128, return_tensors="pt"),
               dict(padding=True, truncation=True, max_length=9, return_tensors="pt"),
               dict(padding="max_length", truncation=True, max_length=40, return_tensors="pt"), {}):
        for args in ((texts, pairs), (texts,)):
            a, b = ours(*args, **kw), theirs(*args, **kw)
            assert set(a) == set(b)
            assert all(torch.equal(a[k], b[k]) if kw else a[k] == b[k] for k in a), (kw, len(args))
    assert ours(texts[0], pairs[0]) == dict(theirs(texts[0], pairs[0]))
    words = " ".join(texts).split() + ODD
    assert [ours.tokenize(w) for w in words] == [theirs.tokenize(w) for w in words]
    ids = theirs(texts[:4], pairs[:4])["input_ids"]
    assert [ours.convert_ids_to_tokens(i) for i in ids] == [theirs.convert_ids_to_tokens(i) for i in ids]
    assert [ours.decode(i) for i in ids] == [theirs.decode(i) for i in ids]
    assert ours.convert_tokens_to_ids(["zzqx", ours.pad_token]) == theirs.convert_tokens_to_ids(["zzqx", theirs.pad_token])


def test_native_tokenizer_gives_transformers_token_ids(folder, tokenizer, tmp_path):
    import transformers as T

    ours, theirs = native_tokenizer.load(folder), T.AutoTokenizer.from_pretrained(folder)
    assert ours is not None
    pairs = make_pairs(40, seed=5)
    _same_tokens(ours, theirs, [p["premise"] for p in pairs] + ODD, [p["hypothesis"] for p in pairs] + ODD[::-1])
    ours.save_pretrained(tmp_path / "copy")                       # the same files: transformers reads them back
    assert T.AutoTokenizer.from_pretrained(tmp_path / "copy").get_vocab() == theirs.get_vocab()
    with pytest.raises(ValueError, match="native=False"):
        ours(["a"], ["b"], truncation="only_second", max_length=4)
    from interp.compat import check_compatible

    check_compatible(load_subject(folder, device="cpu"), load_subject(folder, device="cpu", native=False))
    (folder / "tokenizer.json").unlink()                           # no tokenizer.json: transformers'
    assert native_tokenizer.load(folder) is None
    assert type(load_subject(folder, device="cpu").tokenizer).__name__ == "BertTokenizer"


@pytest.mark.slow
def test_minilm_classifier_loads_natively_with_identical_sites(minilm_path, tmp_path):
    """The real MiniLM (6 layers, 12 heads) with a classifier head, saved and loaded both ways, on HANS pairs;
    its tokenizer on HANS pairs and odd text."""
    base = load_subject(minilm_path, device="cpu")            # bare encoder: transformers, a seeded new head
    folder = _save(base.model, base.tokenizer, tmp_path / "minilm_nli")
    native, hf = load_subject(folder, device="cpu"), load_subject(folder, device="cpu", native=False)
    assert type(native.model).__name__ == "NativeBertForSequenceClassification"
    assert type(native.tokenizer).__name__ == "NativeTokenizer"
    clean, corrupt = hans_pairs(200, kind="break_overlap", seed=0, tokenizer=hf.tokenizer)
    _same_tokens(native.tokenizer, hf.tokenizer, [e["premise"] for e in clean + corrupt] + ODD,
                 [e["hypothesis"] for e in clean + corrupt] + ODD[::-1])
    for examples in (clean[:16], corrupt[:16]):
        la, ca = native.run(examples, read=native.sites())
        lb, cb = hf.run(examples, read=hf.sites())
        assert torch.equal(la, lb)
        assert all(torch.equal(ca[s], cb[s]) for s in native.sites())
