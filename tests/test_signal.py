"""The no-signal guard (interp.signal) and NaN/inf checks, through every analysis that normalises by a gap.

Contrasts without a significant gap: (a) clean and corrupted inputs drawn from one distribution, (b)
pairs that cancel (the same pairs twice, clean and corrupted swapped in the second half: the planted
model's real effect sums to exactly 0), (c) a random MiniLM-shaped model on HANS break_overlap pairs.
Each is refused with the gap and its interval in the message, and with `allow_no_signal=True` the
result is flagged and its normalised values are NaN (raw values stay).
"""
from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch
import transformers as T
from conftest import NLI_LABELS, make_bert, make_pairs, make_tokenizer
from test_circuits import planted_pairs, planted_subject
from test_compare import _identity_head_map
from test_patching import _pairs

from interp.attribution import attribute
from interp.circuits import discover, edge_scores, node_scores
from interp.compare import entailment_margin, entailment_rate, restoration
from interp.contrast import LogOdds, hans_pairs, make_contrast
from interp.cross_patch import cross_patch
from interp.pair import Pair
from interp.patching import patch
from interp.signal import NoSignalError, measure_gap
from interp.subject import load_subject
from interp.weight_patching import weight_patch

pytestmark = pytest.mark.usefixtures("one_thread")

REFUSED = r"No signal.*-? ?[-+]?[\d.e+-]+ \(95% CI \[[-+][\d.e+-]+, [-+][\d.e+-]+\]"  # the gap and its interval


# --- measure_gap by hand -------------------------------------------------------------------------
def test_measure_gap_by_hand():
    const = measure_gap(np.full(10, 2.5), np.full(10, 1.0))  # every pair moves by 1.5
    assert const.significant and const.gap == pytest.approx(1.5) and const.ci95 == (pytest.approx(1.5),) * 2
    d = np.linspace(0.5, 2.0, 8)
    cancel = measure_gap(np.concatenate([d, -d]), np.zeros(16))  # +d and -d: the mean is 0
    assert not cancel.significant and cancel.ci95[0] < 0 < cancel.ci95[1]
    one = measure_gap([3.0], [1.0])
    assert not one.significant and one.n == 1
    with pytest.raises(ValueError, match="no examples"):
        measure_gap([], [])
    with pytest.raises(FloatingPointError, match="NaN"):
        measure_gap([1.0, float("nan")], [0.0, 0.0])


# --- contrasts without a signal --------------------------------------------------------------------
def _same_distribution():
    """(a) A tiny random BERT; corrupted inputs are another random sample of the clean distribution."""
    s = load_subject(make_bert(), tokenizer=make_tokenizer(), name="tiny")
    return s, make_contrast(s, make_pairs(16, seed=1), make_pairs(16, seed=2), align="pad")


def _cancelling():
    """(b) The planted model (a real effect, clean - corrupted > 1 per pair) on its pairs and the same
    pairs swapped: per-pair differences +d_i and -d_i, mean exactly 0."""
    s = planted_subject()
    clean, corrupt = planted_pairs(6)
    return s, make_contrast(s, clean + corrupt, corrupt + clean, metric=LogOdds(0))


def _random_minilm(path: str, seed: int = 1) -> object:
    """(c) MiniLM's shape (6 layers, 12 heads, d 384) and tokenizer, random weights."""
    tok = T.AutoTokenizer.from_pretrained(path)
    torch.manual_seed(seed)
    cfg = T.BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                       vocab_size=tok.vocab_size, num_labels=3, attn_implementation="eager", id2label=NLI_LABELS,
                       label2id={v: k for k, v in NLI_LABELS.items()})
    return load_subject(T.BertForSequenceClassification(cfg).eval(), tokenizer=tok, name=f"random-minilm-{seed}")


def _minilm_contrast(path: str):
    s = _random_minilm(path)
    return s, make_contrast(s, *hans_pairs(16, tokenizer=s.tokenizer, seed=0))


def _check_refused_and_flagged(s, c, edge_method: str = "atp") -> None:
    for run in (lambda **k: patch(s, c, "head", **k), lambda **k: attribute(s, c, "head", **k)):
        with pytest.raises(NoSignalError, match=REFUSED):
            run()
        res = run(allow_no_signal=True)
        assert res.no_signal and res.to_dict()["no_signal"] and not res.signal["significant"]
        assert torch.isnan(res.scores).all() and torch.isfinite(res.raw).all()
        lo, hi = res.signal["ci95"]
        assert lo <= 0 <= hi or abs(res.signal["gap"]) < 2 * res.signal["se"]
    for level in ("node", "edge"):
        with pytest.raises(NoSignalError, match=REFUSED):
            discover(s, c, level=level, method="atp")


def test_same_distribution_contrast_is_refused():
    s, c = _same_distribution()
    _check_refused_and_flagged(s, c)
    with pytest.raises(NoSignalError, match=REFUSED):
        node_scores(s, c, method="atp")
    scores, _, _ = edge_scores(s, c, allow_no_signal=True)
    assert all(np.isnan(v) for v in scores.values())
    for level in ("node", "edge"):
        circ = discover(s, c, level=level, method="atp", allow_no_signal=True)
        m = circ.metadata
        assert m["no_signal"] and m["faithfulness"] is None and circ.nodes == [] and circ.edges == []
        assert circ.scores and all(np.isfinite(v) for v in circ.scores.values())  # raw metric changes
        assert json.loads(circ.to_json())["metadata"]["no_signal"] is True


def test_cancelling_pairs_are_refused():
    s, c = _cancelling()
    _check_refused_and_flagged(s, c)
    circ = discover(s, c, level="node", method="exact", allow_no_signal=True)
    assert circ.metadata["no_signal"] and circ.nodes == [] and circ.metadata["faithfulness"] is None
    # the same model on the unswapped pairs has a real gap: it is the cancellation that is refused
    good = make_contrast(s, *planted_pairs(6), metric=LogOdds(0))
    assert not patch(s, good, "head").no_signal


def test_random_minilm_shaped_model_is_refused(minilm_path):
    s, c = _minilm_contrast(minilm_path)
    for run in (lambda **k: patch(s, c, "head", **k), lambda **k: attribute(s, c, "head", **k)):
        with pytest.raises(NoSignalError, match=REFUSED):
            run()
        res = run(allow_no_signal=True)
        assert res.no_signal and torch.isnan(res.scores).all() and torch.isfinite(res.raw).all()
    for level in ("node", "edge"):  # refused before any scoring
        with pytest.raises(NoSignalError, match=REFUSED):
            discover(s, c, level=level, method="atp")
    circ = discover(s, c, level="node", method="atp", allow_no_signal=True)
    assert circ.metadata["no_signal"] and circ.nodes == [] and len(circ.scores) == 6 * 13


# --- restoration (teacher - student gap) ------------------------------------------------------------
def _check_restoration(result: dict, metric) -> None:
    with pytest.raises(NoSignalError, match=r"teacher - student metric .*95% CI \["):
        restoration(result, metric, n_boot=200)
    rows = restoration(result, metric, n_boot=200, allow_no_signal=True)
    assert rows and all(r["no_signal"] and np.isnan(r["restored"]) and not r["gap_significant"] for r in rows)
    assert all(np.isfinite(r["delta"]) and len(r["delta_ci95"]) == 2 for r in rows)
    deltas = [r["delta"] for r in rows]
    assert deltas == sorted(deltas, reverse=True)  # ranked by the raw change


def test_restoration_without_a_gap_is_refused():
    g = torch.Generator().manual_seed(0)
    same = {"teacher": torch.randn(60, 3, generator=g), "student": torch.randn(60, 3, generator=g),  # (a)
            "patched": {f"head 0.{h}": torch.randn(60, 3, generator=g) for h in range(3)}}
    metric = entailment_margin(["entailment", "neutral", "contradiction"])
    _check_restoration(same, metric)
    a, b = same["teacher"][:30] + 2.0 * torch.tensor([1.0, 0, 0]), same["student"][:30]  # a real gap per example
    cancel = {"teacher": torch.cat([a, b]), "student": torch.cat([b, a]), "patched": same["patched"]}  # (b)
    _check_restoration(cancel, metric)


def test_restoration_on_random_minilm_shaped_models_is_refused(minilm_path):
    t = _random_minilm(minilm_path, seed=1)
    s = load_subject(copy.deepcopy(t.model), tokenizer=t.tokenizer, name="student")
    with torch.no_grad():
        s.model.bert.encoder.layer[5].attention.self.value.weight[:32] = 0.0  # head 5.0 ablated
    pair = Pair(t, s, {l: l for l in range(6)}, _identity_head_map(s))
    clean, _ = hans_pairs(16, tokenizer=t.tokenizer, seed=0)
    result = cross_patch(pair, [dict(e, id=str(i)) for i, e in enumerate(clean)], progress=False)
    # the ablation moves the margin of every example a little, the same way: a small but real gap, not refused
    assert restoration(result, entailment_margin(s.labels), n_boot=200)[0]["gap_significant"]
    # it changes no decision: the gap in HANS non-entailment errors is 0, and shares of it are refused
    _check_restoration(result, entailment_rate(s.labels))


# --- NaN weights -----------------------------------------------------------------------------------
def _nan_subject():
    model = make_bert(seed=0)
    with torch.no_grad():
        model.bert.encoder.layer[1].attention.self.value.weight[0, 0] = float("nan")
    return load_subject(model, tokenizer=make_tokenizer(), name="nanbert")


def test_nan_weights_name_the_site_and_layer():
    s = _nan_subject()
    c = make_contrast(s, *_pairs(5, seed=2), metric=LogOdds(1))
    layer1 = r"nanbert, blocks\.1\.hook_resid_post \((clean|corrupted) input\)"
    with pytest.raises(FloatingPointError, match=layer1):
        patch(s, c, "head", allow_no_signal=True)
    with pytest.raises(FloatingPointError, match=r"nanbert, blocks\.1\.attn\.hook_z"):
        attribute(s, c, "head", allow_no_signal=True)
    for level in ("node", "edge"):
        with pytest.raises(FloatingPointError, match=layer1):
            discover(s, c, level=level, method="atp", allow_no_signal=True)
    teacher = load_subject(make_bert(seed=0), tokenizer=make_tokenizer(), name="teacher")
    pair = Pair(teacher, s, {l: l for l in range(3)}, _identity_head_map(s))
    with pytest.raises(FloatingPointError, match=r"nanbert, blocks\.1\.hook_resid_post"):
        cross_patch(pair, make_pairs(8), progress=False)
    with pytest.raises(FloatingPointError, match=r"nanbert, blocks\.1\.hook_resid_post"):
        weight_patch(s, teacher, make_pairs(8), progress=False)
    good = cross_patch(Pair(teacher, teacher, {l: l for l in range(3)}, _identity_head_map(s)), make_pairs(8),
                       progress=False)
    good["student"] = torch.full_like(good["student"], float("nan"))  # logits stored by an earlier step
    with pytest.raises(FloatingPointError, match="student logits"):
        restoration(good, entailment_margin(s.labels), allow_no_signal=True)


def test_empty_contrast_is_a_clear_error():
    s = load_subject(make_bert(), tokenizer=make_tokenizer())
    c = make_contrast(s, *_pairs(3)).slice(0, 0)
    for run in (lambda: patch(s, c, "head"), lambda: attribute(s, c, "head"), lambda: discover(s, c)):
        with pytest.raises(ValueError, match="no pairs"):
            run()


# --- command line ----------------------------------------------------------------------------------
def test_cli_refuses_in_one_line_and_flags_the_override(tmp_path, capsys):
    from interp.circuits import Circuit
    from interp.cli import main
    s, c = _same_distribution()
    s.model.save_pretrained(tmp_path / "m")
    s.tokenizer.save_pretrained(tmp_path / "m")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"clean": a, "corrupt": b})
                               for a, b in zip(make_pairs(16, seed=1), make_pairs(16, seed=2))))
    base = ["--model", str(tmp_path / "m"), "--pairs", str(pairs), "--align", "pad"]
    for cmd in ("patch", "circuit"):
        capsys.readouterr()
        assert main([cmd, *base, "--out", str(tmp_path / cmd)]) == 2
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if x.startswith(f"interp {cmd}: error:")]
        assert len(lines) == 1 and re.search(REFUSED, lines[0]) and "Traceback" not in err
        assert main([cmd, *base, "--allow-no-signal", "--out", str(tmp_path / cmd)]) == 0
        out = capsys.readouterr().out
        assert "NO SIGNAL" in out and "95% CI" in out
    rec = json.loads((tmp_path / "patch" / "patching.json").read_text())["result"]
    assert rec["no_signal"] and rec["signal"]["n"] == 16 and all(np.isnan(v) for row in rec["scores"] for v in row)
    assert (tmp_path / "patch" / "patching.png").stat().st_size > 1000
    circ = Circuit.from_json(tmp_path / "circuit" / "circuit.json")
    assert circ.metadata["no_signal"] and circ.nodes == [] and (tmp_path / "circuit" / "circuit.png").exists()


def test_vectorised_ratio_bootstrap_equals_the_per_resample_one():
    """bootstrap_ci(of_means=gap_share) resamples exactly as stat= does: same interval as a per-resample
    Python ratio, also when some resamples have no gap (dropped as undefined)."""
    import numpy as np

    from interp.signal import bootstrap_ci, gap_share

    def share(v):
        den = v[:, 0].mean() - v[:, 1].mean()
        return float((v[:, 2].mean() - v[:, 1].mean()) / den) if den != 0 else float("nan")

    rng = np.random.default_rng(3)
    v = rng.normal(size=(200, 3)) + np.array([1.0, 0.0, 0.6])
    for rows in (v, np.array([[1.0, 0.0, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])):  # 2nd: gap 0 on resamples
        slow = bootstrap_ci(rows, 500, 7, stat=share)
        fast = bootstrap_ci(rows, 500, 7, of_means=gap_share)
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    assert bootstrap_ci(v, 500, 7, of_means=gap_share) != bootstrap_ci(v, 500, 8, of_means=gap_share)
