"""Evaluation metrics: accuracy, HANS scores and spurious gap, group fairness (worst group, DPD, EOD),
per-class Welch tests over seeds, individual (counterfactual) fairness, and label-order checks between models.

Why here: every analysis compares teacher, distilled student and non-distilled student on the same
numbers; one definition per number keeps the comparisons honest.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from interp.data.hans import score_hans as hans_scores  # noqa: F401  (re-exported: HANS accuracies)

Labels = Mapping[int, str] | Sequence[str]
ArrayLike = Sequence | np.ndarray  # labels, predictions, groups: a list or a numpy array


# --- label sets ---------------------------------------------------------------------------------
def label_order(id2label: Labels) -> tuple[str, ...]:
    """Labels in class-index order from an ``id2label`` mapping (int or str keys) or a sequence, each
    ``str()``-ed, stripped and lower-cased (the form label orders are compared in)."""
    if isinstance(id2label, Mapping):
        ids = sorted(int(k) for k in id2label)
        if ids != list(range(len(ids))):
            raise ValueError(f"id2label ids must be 0..{len(ids) - 1}, got {ids}")
        by_int = {int(k): v for k, v in id2label.items()}
        return tuple(str(by_int[i]).strip().lower() for i in ids)
    return tuple(str(x).strip().lower() for x in id2label)


def check_label_order(id2label_a: Labels, id2label_b: Labels, names: tuple[str, str] = ("teacher", "student")) -> tuple[str, ...]:
    """Raise ValueError naming both orders unless the two label orders are identical (case-insensitive,
    surrounding spaces ignored).

    The one label-order check: teacher vs student (KD silently garbles if logits are not in the same class
    order; `interp.compat.check_compatible` calls it), a bias-only model vs the main model, a label set vs a
    model's ``config.id2label``. Returns the common order.
    """
    a, b = label_order(id2label_a), label_order(id2label_b)
    if a != b:
        what = "label sets differ" if set(a) != set(b) else "label orders differ"
        raise ValueError(f"{what}: {names[0]} has {list(a)}, {names[1]} has {list(b)}. Logits are compared index by "
                         f"index: remap the {names[1]}'s classifier rows (or its id2label) so both agree.")
    return a


# --- accuracy -----------------------------------------------------------------------------------
def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of equal entries (labels or class indices)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape}, y_pred {p.shape}")
    return float(np.mean(t == p)) if t.size else float("nan")


def per_class_accuracy(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """Recall of each class (accuracy on the examples whose gold class is c); NaN for absent classes."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return np.array([np.mean(p[t == c] == c) if np.any(t == c) else np.nan for c in range(n_classes)])


def spurious_gap(scores: Mapping, heuristic: str | None = None) -> float:
    """HANS entailment accuracy minus non-entailment accuracy, from ``score_hans`` output.

    A model that follows the overlap heuristics scores near +1 (all "entailment"), an unbiased one
    near 0. With ``heuristic=None`` both accuracies are averaged over heuristics with equal weight
    (equal to pooling on HANS, where every heuristic x label cell has 5,000 examples).
    """
    cells = scores["by_heuristic_label"]
    hs = [heuristic] if heuristic else sorted(cells)
    ent = [cells[h]["entailment"] for h in hs]
    non = [cells[h]["non-entailment"] for h in hs]
    return float(np.mean(ent) - np.mean(non))


# --- groups and fairness ------------------------------------------------------------------------
def group_accuracies(y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike) -> dict:
    """Accuracy within each group value."""
    t, p, g = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    return {k.item() if hasattr(k, "item") else k: float(np.mean(t[g == k] == p[g == k])) for k in np.unique(g)}


def worst_group_accuracy(y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike) -> float:
    """Minimum over groups of the within-group accuracy (e.g. groups = (label, aligned))."""
    return min(group_accuracies(y_true, y_pred, groups).values())


def demographic_parity_difference(y_pred: ArrayLike, groups: ArrayLike, positive=1) -> float:
    """DPD = max_a P(yhat = positive | A = a) - min_a P(yhat = positive | A = a)."""
    p, g = np.asarray(y_pred) == positive, np.asarray(groups)
    rates = [p[g == a].mean() for a in np.unique(g)]
    return float(max(rates) - min(rates))


def equalized_odds_difference(y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike, positive=1) -> float:
    """EOD = max(TPR gap, FPR gap), each gap = max over groups minus min over groups.

    Groups with no gold positives (negatives) are left out of the TPR (FPR) gap; a gap needs two groups.
    """
    t, p, g = np.asarray(y_true) == positive, np.asarray(y_pred) == positive, np.asarray(groups)
    tpr = [p[(g == a) & t].mean() for a in np.unique(g) if np.any((g == a) & t)]
    fpr = [p[(g == a) & ~t].mean() for a in np.unique(g) if np.any((g == a) & ~t)]
    if len(tpr) < 2 and len(fpr) < 2:
        raise ValueError("equalized odds needs two groups with positives or two with negatives")
    gaps = [max(r) - min(r) for r in (tpr, fpr) if len(r) >= 2]
    return float(max(gaps))


# --- per-class Welch tests over seeds -----------------------------------------------------------
def welch_t(a: ArrayLike, b: ArrayLike) -> tuple[float, float, float]:
    """Welch's unequal-variance t-test (textbook form): t, Welch-Satterthwaite dof, two-sided p."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se2 = va + vb
    if se2 == 0:
        return float("nan"), float("nan"), float("nan")
    t = (x.mean() - y.mean()) / math.sqrt(se2)
    dof = se2 ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    return float(t), float(dof), float(2 * stats.t.sf(abs(t), dof))


def classwise_welch(acc_a, acc_b, alpha: float = 0.05, min_sd: float = 0.005) -> dict:
    """Welch's t-test per class between two runs-over-seeds, with the effect size next to the p-value.

    ``acc_a`` [seeds_a, classes], ``acc_b`` [seeds_b, classes]: per-class accuracy of each seed.
    Returns {"t", "p", "significant", "n_significant", "diff", "diff_ci95", "near_constant"} per class:
    ``diff`` = mean_a - mean_b with its Welch 95% interval ([C, 2]). With few seeds a class whose
    accuracy barely moves across seeds (sd < ``min_sd`` on both sides; 0.005 = half a point, about
    one test example per class here) gives a tiny standard error and an extreme p-value (1e-29 from
    three seeds) that says more about the test than about the models: such classes are flagged
    ``near_constant``, their p is NaN and they never count as significant; read their ``diff``.
    Classes with zero variance on both sides (undefined t) are near-constant too.
    """
    a, b = np.asarray(acc_a, float), np.asarray(acc_b, float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected [seeds, classes] arrays with equal class counts, got {a.shape} and {b.shape}")
    if min(a.shape[0], b.shape[0]) < 2:
        raise ValueError("Welch's test needs at least two seeds per side")
    with warnings.catch_warnings():  # identical seeds give an undefined t; reported as NaN, not warned about
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(a, b, axis=0, equal_var=False)
    t, p = np.asarray(res.statistic, float), np.asarray(res.pvalue, float)
    near = (a.std(0, ddof=1) < min_sd) & (b.std(0, ddof=1) < min_sd)
    p = np.where(near, np.nan, p)
    diff = a.mean(0) - b.mean(0)
    ci = np.zeros((a.shape[1], 2))
    for c in range(a.shape[1]):
        _, dof, _ = welch_t(a[:, c], b[:, c])
        se = math.sqrt(a[:, c].var(ddof=1) / len(a) + b[:, c].var(ddof=1) / len(b))
        h = float(stats.t.ppf(0.975, dof)) * se if se > 0 else 0.0
        ci[c] = diff[c] - h, diff[c] + h
    sig = (np.nan_to_num(p, nan=1.0) < alpha) & ~near
    return {"t": t, "p": p, "significant": sig, "n_significant": int(sig.sum()), "diff": diff, "diff_ci95": ci,
            "near_constant": near}


def count_differing_classes(distilled, non_distilled, teacher, alpha: float = 0.05) -> dict:
    """How many classes the distilled student's per-class accuracy differs on (Welch, p < alpha) from
    the non-distilled student and from the teacher (Mohammadshahi & Ioannou's comparison).
    Each input is [seeds, classes]."""
    vs_s = classwise_welch(distilled, non_distilled, alpha)
    vs_t = classwise_welch(distilled, teacher, alpha)
    return {"vs_student": vs_s["n_significant"], "vs_teacher": vs_t["n_significant"],
            "detail": {"vs_student": vs_s, "vs_teacher": vs_t}}


# --- individual (counterfactual) fairness ------------------------------------------------------
def individual_fairness(y_pred: Sequence | np.ndarray, cf_preds: Sequence[Sequence | np.ndarray], probs=None,
                        cf_probs=None) -> dict:
    """Consistency of predictions between each input and its counterfactuals (the same input with the
    protected / spurious attribute changed, everything else kept), the individual-fairness reading of
    Mohammadshahi & Ioannou: similar individuals get the same prediction.

    ``y_pred`` [n]; ``cf_preds``: one [n] prediction array per counterfactual (e.g. one per other
    attribute value). Returns ``consistency`` (mean over examples and counterfactuals of
    1[pred == cf pred]; 1 = perfectly fair), ``all_consistent`` (fraction of examples whose prediction
    survives every counterfactual), ``per_counterfactual`` [k], and with ``probs`` [n, C] and
    ``cf_probs`` (one [n, C] per counterfactual) ``mean_tv``: the mean total-variation distance
    ``0.5 * sum_c |p_c - p_cf,c|`` between predicted distributions (0 = unchanged)."""
    p = np.asarray(y_pred)
    cfs = [np.asarray(c) for c in cf_preds]
    if not cfs:
        raise ValueError("individual_fairness needs at least one counterfactual prediction array.")
    if any(c.shape != p.shape for c in cfs) or p.ndim != 1:
        raise ValueError(f"y_pred and every counterfactual must be [n]; got {p.shape} and "
                         f"{[c.shape for c in cfs]}.")
    same = np.stack([c == p for c in cfs])  # [k, n]
    out = {"consistency": float(same.mean()), "all_consistent": float(same.all(0).mean()),
           "per_counterfactual": same.mean(1).tolist()}
    if probs is not None:
        if cf_probs is None or len(cf_probs) != len(cfs):
            raise ValueError("probs needs cf_probs: one [n, C] array per counterfactual.")
        q = np.asarray(probs, float)
        out["mean_tv"] = float(np.mean([0.5 * np.abs(q - np.asarray(c, float)).sum(-1).mean() for c in cf_probs]))
    return out
