"""Tests for the Clark et al. bias-only model (interp.bias_only)."""

import numpy as np
import pytest

from interp.bias_only import BiasOnlyModel, bias_features, fit_bias_only
from interp.data.nli_gen import LABELS, generate_nli_splits


def test_features_hand_computed() -> None:
    f = bias_features("The boy pushed the girl .", "The girl pushed the boy .")
    assert f == pytest.approx([0.0, 1.0, 1.0, 0.0])
    f = bias_features("The boy pushed the girl in the park .", "the girl in the park")
    assert f == pytest.approx([1.0, 1.0, 1.0, np.log(8) - np.log(5)])
    f = bias_features("The boy ate .", "The boy never ate bread")  # 3 of 5 words in premise
    assert f == pytest.approx([0.0, 0.0, 0.6, np.log(3) - np.log(5)])


@pytest.fixture(scope="module")
def splits() -> dict:
    return generate_nli_splits(3000, 1500, bias=0.9, seed=0)


def test_learns_the_overlap_cue(splits: dict) -> None:
    m = fit_bias_only(splits["train"])
    proba = m.predict_proba(splits["test"])
    assert proba.shape == (1500, 3) and np.allclose(proba.sum(1), 1)
    pred = m.predict(splits["test"])
    gold = [e["label"] for e in splits["test"]]
    aligned = np.array([e["aligned"] for e in splits["test"]])
    correct = np.array(pred) == np.array(gold)
    assert correct.mean() > 0.7                       # the cue is strong at bias 0.9 ...
    assert correct[aligned].mean() > 0.8
    assert correct[~aligned].mean() < 0.2             # ... and wrong exactly where it conflicts
    # High overlap -> entailment is the most probable class.
    ent = LABELS.index("entailment")
    high = np.array([e["overlap"] == 1.0 for e in splits["test"]])
    assert (proba[high].argmax(1) == ent).mean() > 0.95


def test_class_order_is_respected(splits: dict) -> None:
    a = fit_bias_only(splits["train"], classes=LABELS)
    rev = tuple(reversed(LABELS))
    b = fit_bias_only(splits["train"], classes=rev)
    pa, pb = a.predict_proba(splits["test"][:50]), b.predict_proba(splits["test"][:50])
    assert np.allclose(pa, pb[:, ::-1], atol=1e-3)


def test_label_mismatch_errors(splits: dict) -> None:
    m = fit_bias_only(splits["train"])
    m.check_classes({0: "entailment", 1: "neutral", 2: "contradiction"})
    m.check_classes({"0": "ENTAILMENT", "1": "NEUTRAL", "2": "CONTRADICTION"})
    with pytest.raises(ValueError, match=r"bias-only model has \['entailment', 'neutral', 'contradiction'\], "
                                         r"main model has \['contradiction', 'entailment', 'neutral'\]"):
        m.check_classes({0: "contradiction", 1: "entailment", 2: "neutral"})
    with pytest.raises(ValueError, match="label sets differ"):
        m.check_classes(["entailment", "non-entailment"])
    with pytest.raises(ValueError, match="not in the model's classes"):
        BiasOnlyModel(classes=("entailment", "non-entailment")).fit(splits["train"][:10])
    with pytest.raises(RuntimeError, match="not fitted"):
        BiasOnlyModel().predict_proba(splits["train"][:1])
