"""Tests for interp.metrics against hand-computed values, scipy and the textbook Welch formula."""

import math

import numpy as np
import pytest
from scipy import stats

from interp import metrics


def test_accuracy_and_per_class() -> None:
    assert metrics.accuracy([0, 1, 2, 2], [0, 2, 2, 2]) == 0.75
    assert np.allclose(metrics.per_class_accuracy([0, 1, 2, 2], [0, 2, 2, 1], 4), [1, 0, 0.5, np.nan], equal_nan=True)
    with pytest.raises(ValueError, match="shape"):
        metrics.accuracy([0, 1], [0])


def test_worst_group() -> None:
    y, p = [1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1]
    g = ["a", "a", "a", "b", "b", "b"]
    assert metrics.group_accuracies(y, p, g) == {"a": pytest.approx(2 / 3), "b": pytest.approx(2 / 3)}
    assert metrics.worst_group_accuracy(y, p, ["a", "a", "b", "b", "c", "c"]) == 0.5


def test_dpd_hand_computed() -> None:
    # group a: yhat=1 in 3/4; group b: 1/4; group c: 2/4 -> DPD = 3/4 - 1/4
    yhat = [1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0]
    g = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert metrics.demographic_parity_difference(yhat, g) == pytest.approx(0.5)
    assert metrics.demographic_parity_difference(yhat, g, positive=0) == pytest.approx(0.5)
    assert metrics.demographic_parity_difference([1, 0, 1, 0], ["a", "a", "b", "b"]) == 0.0


def test_eod_hand_computed() -> None:
    # group a: y = 1 1 1 0 0, yhat = 1 1 0 1 0 -> TPR 2/3, FPR 1/2
    # group b: y = 1 1 0 0 0, yhat = 1 0 0 0 0 -> TPR 1/2, FPR 0
    y = [1, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    yhat = [1, 1, 0, 1, 0, 1, 0, 0, 0, 0]
    g = ["a"] * 5 + ["b"] * 5
    assert metrics.equalized_odds_difference(y, yhat, g) == pytest.approx(0.5)     # FPR gap 1/2 > TPR gap 1/6
    yhat2 = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]                                          # TPR 1 vs 0, FPR 0 vs 0
    assert metrics.equalized_odds_difference(y, yhat2, g) == pytest.approx(1.0)


def _textbook_welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    sa = sum((x - ma) ** 2 for x in a) / (len(a) - 1)
    sb = sum((x - mb) ** 2 for x in b) / (len(b) - 1)
    t = (ma - mb) / math.sqrt(sa / len(a) + sb / len(b))
    nu = (sa / len(a) + sb / len(b)) ** 2 / ((sa / len(a)) ** 2 / (len(a) - 1) + (sb / len(b)) ** 2 / (len(b) - 1))
    return t, nu


def test_welch_against_scipy_and_textbook() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.80, 0.02, size=(5, 4))
    b = rng.normal([0.80, 0.70, 0.80, 0.60], 0.05, size=(7, 4))
    r = metrics.classwise_welch(a, b, alpha=0.05)
    ref = stats.ttest_ind(a, b, axis=0, equal_var=False)
    assert np.allclose(r["t"], ref.statistic) and np.allclose(r["p"], ref.pvalue)
    for c in range(4):
        t, nu = _textbook_welch(a[:, c], b[:, c])
        t2, nu2, p2 = metrics.welch_t(a[:, c], b[:, c])
        assert t2 == pytest.approx(t) and nu2 == pytest.approx(nu)
        assert r["t"][c] == pytest.approx(t)
        assert r["p"][c] == pytest.approx(2 * stats.t.sf(abs(t), nu)) and p2 == pytest.approx(r["p"][c])
    assert r["n_significant"] == int((ref.pvalue < 0.05).sum())
    assert r["significant"][1] and r["significant"][3] and not r["significant"][0]


def test_welch_edge_cases() -> None:
    same = np.full((3, 2), 0.5)
    r = metrics.classwise_welch(same, same)
    assert r["n_significant"] == 0
    with pytest.raises(ValueError, match="two seeds"):
        metrics.classwise_welch(np.ones((1, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="classes"):
        metrics.classwise_welch(np.ones((3, 2)), np.ones((3, 3)))


def test_welch_flags_near_constant_classes_and_gives_effect_sizes() -> None:
    """Three seeds whose class-0 accuracies barely move: the old test reported p ~ 1e-9 and 'differs';
    now the class is flagged near-constant (p NaN, not significant) and its difference is reported
    with an interval. A class with real spread keeps its p-value; the interval is the textbook Welch one."""
    a = np.array([[0.980, 0.70], [0.981, 0.75], [0.980, 0.72]])
    b = np.array([[0.990, 0.60], [0.990, 0.64], [0.991, 0.61]])
    old_p = stats.ttest_ind(a, b, axis=0, equal_var=False).pvalue
    assert old_p[0] < 1e-4  # extreme p from near-constant accuracies
    r = metrics.classwise_welch(a, b)
    assert r["near_constant"].tolist() == [True, False]
    assert np.isnan(r["p"][0]) and not r["significant"][0]
    assert r["p"][1] == pytest.approx(old_p[1]) and r["significant"][1]
    assert r["diff"][0] == pytest.approx(a[:, 0].mean() - b[:, 0].mean())
    t, nu = _textbook_welch(a[:, 1], b[:, 1])
    se = (a[:, 1].mean() - b[:, 1].mean()) / t
    half = stats.t.ppf(0.975, nu) * se
    assert r["diff_ci95"][1] == pytest.approx([r["diff"][1] - half, r["diff"][1] + half])


def test_count_differing_classes() -> None:
    noise = np.array([[-0.02, 0.01, 0.0], [0.01, -0.01, 0.02], [0.0, 0.02, -0.01], [0.02, -0.02, 0.01], [-0.01, 0.0, -0.02]])
    teacher = np.array([0.9, 0.9, 0.9]) + noise
    student = np.array([0.8, 0.8, 0.8]) + noise[::-1]
    distilled = np.array([0.8, 0.9, 0.85]) + noise[:, ::-1]  # like student on class 0, teacher on 1, neither on 2
    r = metrics.count_differing_classes(distilled, student, teacher)
    assert r["vs_student"] == 2 and r["vs_teacher"] == 2
    assert list(r["detail"]["vs_student"]["significant"]) == [False, True, True]


def test_check_label_order() -> None:
    t = {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert metrics.check_label_order(t, ["entailment", "neutral", "contradiction"]) == tuple(t.values())
    with pytest.raises(ValueError, match=r"label orders differ: teacher has \['entailment', 'neutral', 'contradiction'\], "
                                         r"student has \['contradiction', 'neutral', 'entailment'\]"):
        metrics.check_label_order(t, {0: "contradiction", 1: "neutral", 2: "entailment"})
    with pytest.raises(ValueError, match="label sets differ"):
        metrics.check_label_order(t, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, names=("labels", "model"))
    with pytest.raises(ValueError, match="0..1"):
        metrics.label_order({0: "a", 2: "b"})


def test_spurious_gap_from_hans_scores() -> None:
    ex = [{"id": i, "premise": "p", "hypothesis": "h", "label": lab, "heuristic": h, "subcase": "s", "template": "t"}
          for i, (lab, h) in enumerate([("entailment", "lexical_overlap"), ("non-entailment", "lexical_overlap"),
                                        ("entailment", "constituent"), ("non-entailment", "constituent")])]
    always_ent = metrics.hans_scores(ex, ["entailment"] * 4)
    assert metrics.spurious_gap(always_ent) == 1.0
    s = metrics.hans_scores(ex, ["entailment", "neutral", "neutral", "neutral"])
    # lexical_overlap: ent 1, non 1; constituent: ent 0, non 1 -> mean ent 0.5, mean non 1
    assert metrics.spurious_gap(s) == pytest.approx(-0.5)
    assert metrics.spurious_gap(s, "lexical_overlap") == 0.0
