"""Activation patching against an independent one-component-at-a-time implementation, and bad input."""
from __future__ import annotations

import random

import pytest
import torch
from conftest import WORDS, make_bert, make_distilbert, make_tokenizer

from interp.contrast import LogOdds, Prob, hans_pairs, make_contrast, make_metric
from interp.patching import patch
from interp.subject import load_subject


def _pairs(n: int = 5, seed: int = 1, lengths: tuple[int, int] | None = None) -> tuple[list[dict], list[dict]]:
    """Corrupted = clean with one hypothesis word replaced: same token length. `lengths` fixes the
    premise and hypothesis word counts (default: 3-4 and 2-3 words, so batches are padded)."""
    r = random.Random(seed)
    clean, corrupt = [], []
    for i in range(n):
        p = [r.choice(WORDS) for _ in range(lengths[0] if lengths else r.randrange(3, 5))]
        h = [r.choice(p) for _ in range(lengths[1] if lengths else r.randrange(2, 4))]
        h2 = list(h)
        h2[r.randrange(len(h))] = r.choice(WORDS)
        clean.append({"id": f"c{i}", "premise": " ".join(p), "hypothesis": " ".join(h)})
        corrupt.append({"id": f"r{i}", "premise": " ".join(p), "hypothesis": " ".join(h2)})
    return clean, corrupt


pytestmark = pytest.mark.usefixtures("one_thread")


def _subject(kind: str = "bert", head_scale: float = 40.0):
    model = make_bert(seed=3) if kind == "bert" else make_distilbert(seed=3)
    for name, p in model.named_parameters():  # larger weights: effects well above float noise
        if p.dim() > 1:
            p.data.mul_(head_scale if ("classifier" in name or "pooler" in name) else 5.0)
    return load_subject(model, tokenizer=make_tokenizer())


def reference(subject, contrast, component: str, per_position: bool, direction: str) -> torch.Tensor:
    """One full forward per component with subject.run writes; raw mean metric."""
    base, src = (contrast.corrupt, contrast.clean) if direction == "denoise" else (contrast.clean, contrast.corrupt)
    kind = {"resid": "hook_resid_post", "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out",
            "head": "attn.hook_z"}[component]
    L, H, P = subject.n_layers, subject.n_heads, contrast.n_pos
    out = {}
    with torch.no_grad():
        _, src_cache = subject.run(src, read=[f"blocks.{l}.{kind}" for l in range(L)])
        for l in range(L):
            site = f"blocks.{l}.{kind}"
            heads = range(H) if component == "head" else [None]
            positions = range(P) if per_position else [None]
            for h in heads:
                for p in positions:
                    def w(v, h=h, p=p, site=site):
                        v = v.clone()
                        sel = (slice(None), slice(None) if p is None else p)
                        if h is None:
                            v[sel] = src_cache[site][sel]
                        else:
                            v[sel + (h,)] = src_cache[site][sel + (h,)]
                        return v
                    logits, _ = subject.run(base, write={site: w})
                    key = (l,) + ((h,) if h is not None else ()) + ((p,) if p is not None else ())
                    out[key] = contrast.metric(logits).double().mean()
    shape = (L,) + ((H,) if component == "head" else ()) + ((P,) if per_position else ())
    res = torch.zeros(shape, dtype=torch.float64)
    for k, v in out.items():
        res[k] = v
    return res


@pytest.mark.parametrize("component,per_position,direction", [
    ("head", False, "denoise"), ("head", False, "noise"), ("head", True, "denoise"), ("attn_out", False, "noise"),
    ("mlp_out", True, "denoise"), ("resid", True, "noise")])
def test_patching_equals_one_at_a_time(component, per_position, direction):
    subject = _subject()
    clean, corrupt = _pairs(seed=2)  # a real clean - corrupted gap in LogOdds(1): normalised scores are defined
    c = make_contrast(subject, clean, corrupt, metric=LogOdds(1))
    # tiny max_rows and batch_size: exercises chunking of the expanded batch and of the pairs
    res = patch(subject, c, component, per_position, direction, batch_size=4, max_rows=13)
    ref = reference(subject, c, component, per_position, direction)
    assert res.raw.shape == ref.shape
    torch.testing.assert_close(res.raw.double(), ref, atol=1e-5, rtol=0)
    assert res.raw.std() > 1e-3  # patching moved the metric: the comparison is not vacuous
    # normalisation: 0 = corrupt, 1 = clean
    torch.testing.assert_close(res.scores.double(), (ref - res.corrupt_metric) / (res.clean_metric - res.corrupt_metric),
                               atol=1e-4, rtol=1e-4)


def test_patching_distilbert_and_prob_metric():
    subject = _subject("distilbert", head_scale=3.0)
    clean, corrupt = _pairs(4, seed=5)
    c = make_contrast(subject, clean, corrupt, metric=Prob(2))
    res = patch(subject, c, "head", False, "denoise", max_rows=7, allow_no_signal=True)  # exactness of raw values
    torch.testing.assert_close(res.raw.double(), reference(subject, c, "head", False, "denoise"), atol=1e-5, rtol=0)


def test_full_patch_recovers_endpoints():
    """Patching the last layer's whole residual at every position gives the clean metric exactly."""
    subject = _subject()
    c = make_contrast(subject, *_pairs(seed=3), metric=LogOdds(0))  # pairs with a real gap in LogOdds(0)
    res = patch(subject, c, "resid", True, "denoise")
    assert not res.no_signal
    last = subject.n_layers - 1
    # the BERT head reads position 0 only
    assert res.scores[last, 0] == pytest.approx(1.0, abs=1e-4)
    assert res.scores[last, 1:].abs().max() < 1e-4


def test_length_mismatch_is_clear_error_or_aligned():
    subject = _subject()
    clean = [{"id": "a", "premise": "w1 w2 w3", "hypothesis": "w1 w2"}]
    corrupt = [{"id": "b", "premise": "w1 w2 w3", "hypothesis": "w1 w2 w5"}]
    with pytest.raises(ValueError, match="different token lengths"):
        make_contrast(subject, clean, corrupt)
    c = make_contrast(subject, clean, corrupt, align="pad")
    assert c.clean["input_ids"].shape == c.corrupt["input_ids"].shape == (1, 9)
    assert c.clean["attention_mask"].sum() == 8 and c.corrupt["attention_mask"].sum() == 9
    res = patch(subject, c, "head", False, "noise", allow_no_signal=True)  # one pair: never a significant gap
    assert torch.isfinite(res.raw).all() and res.no_signal
    ok = _pairs(3)
    c2 = make_contrast(subject, ok[0] + clean, ok[1] + corrupt, align="drop")
    assert len(c2) == 3 and c2.meta["dropped"] == 1


def test_metric_without_per_example_scalar_is_clear_error():
    subject = _subject()
    c = make_contrast(subject, *_pairs(), metric=lambda z: z.mean())
    with pytest.raises(ValueError, match="one scalar per example"):
        patch(subject, c, "head")
    c.metric = lambda z: None
    with pytest.raises(TypeError, match="must return a tensor"):
        patch(subject, c, "head")
    with pytest.raises(KeyError, match="not among the model's labels"):
        make_metric(subject, target="paraphrase")


def test_unknown_component_is_clear_error():
    subject = _subject()
    c = make_contrast(subject, *_pairs())
    with pytest.raises(ValueError, match="Unknown component"):
        patch(subject, c, "hook_q")


def test_hans_pairs_match_lengths_on_real_tokenizer(minilm_path):
    subject = load_subject(minilm_path)
    clean, corrupt = hans_pairs(40, tokenizer=subject.tokenizer)
    c = make_contrast(subject, clean, corrupt)  # strict: raises if any length differs
    assert len(c) == 40
    assert (c.clean["attention_mask"] == c.corrupt["attention_mask"]).all()
    assert (c.clean["input_ids"] != c.corrupt["input_ids"]).any(1).all()
    sw = make_contrast(subject, *hans_pairs(10, kind="swap"))
    assert (sw.clean["input_ids"].sort(1).values == sw.corrupt["input_ids"].sort(1).values).all()


def _same_length_contrast(subject, n: int = 6, seed: int = 2):
    """Pairs that token ids alone reproduce: one token length, no padding, token_type_ids 0."""
    c = make_contrast(subject, *_pairs(n, seed, lengths=(4, 3)), metric=LogOdds(0))
    for b in (c.clean, c.corrupt):
        assert bool(b["attention_mask"].all())
        b["token_type_ids"] = torch.zeros_like(b["token_type_ids"])
    return c


def test_patching_equals_transformer_lens_patching_functions():
    """Our head (all positions) and per-position residual patching against TransformerLens's own
    get_act_patch_attn_head_out_all_pos and get_act_patch_resid_pre on a TransformerBridge of the same
    model (our resid_post of layer l = TL's resid_pre of layer l + 1)."""
    from transformer_lens import patching as tlp

    from interp.backends.tl_bridge import bridge_from_hf
    subject = _subject()
    c = _same_length_contrast(subject)
    bridge = bridge_from_hf(subject.model, make_tokenizer())

    def metric(logits):  # TL expects a scalar
        return c.metric(logits).mean()

    with torch.no_grad():
        _, clean_cache = bridge.run_with_cache(c.clean["input_ids"])
        tl_heads = tlp.get_act_patch_attn_head_out_all_pos(bridge, c.corrupt["input_ids"], clean_cache, metric)
        tl_resid = tlp.get_act_patch_resid_pre(bridge, c.corrupt["input_ids"], clean_cache, metric)
    heads = patch(subject, c, "head", False, "denoise", allow_no_signal=True)  # raw values are compared
    resid = patch(subject, c, "resid", True, "denoise", allow_no_signal=True)
    assert heads.raw.std() > 1e-3
    torch.testing.assert_close(heads.raw, tl_heads.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(resid.raw[:-1], tl_resid[1:].float(), atol=1e-5, rtol=0)
