"""Bias-only model for NLI (Clark et al. 2019): logistic regression on lexical-overlap features.

Why: debiasing losses (product of experts, reweighting, confidence regularisation, focal) need
p_b(y | x) from a model that sees only the shortcut. Features per (premise, hypothesis), on
lower-cased word tokens with punctuation dropped:
  is_subsequence  hypothesis is a contiguous subsequence of the premise (McCoy et al.'s sense)
  all_in_premise  every hypothesis word occurs in the premise
  overlap         fraction of hypothesis words that occur in the premise
  log_len_diff    log(len(premise)) - log(len(hypothesis))
Multinomial logistic regression with a small L2 penalty, fitted with scipy's L-BFGS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from interp.data.nli_gen import LABELS, lexical_overlap, words
from interp.metrics import Labels, check_label_order

FEATURE_NAMES: tuple[str, ...] = ("is_subsequence", "all_in_premise", "overlap", "log_len_diff")


def bias_features(premise: str, hypothesis: str) -> np.ndarray:
    """The four Clark et al. features of one pair (see module docstring)."""
    p, h = words(premise), words(hypothesis)
    sub = any(p[i:i + len(h)] == h for i in range(len(p) - len(h) + 1)) if h else False
    ov = lexical_overlap(premise, hypothesis)
    return np.array([float(sub), float(ov == 1.0), ov, np.log(max(len(p), 1)) - np.log(max(len(h), 1))])


def featurize(examples: Iterable[Mapping]) -> np.ndarray:
    """[n, 4] feature matrix of examples with ``premise`` and ``hypothesis``."""
    rows = [bias_features(e["premise"], e["hypothesis"]) for e in examples]
    return np.stack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))


@dataclass
class BiasOnlyModel:
    """Logistic regression over ``FEATURE_NAMES`` whose outputs are in the order of ``classes``."""

    classes: tuple[str, ...] = LABELS
    l2: float = 1e-3
    coef_: np.ndarray | None = None       # [n_features + 1, n_classes], last row = intercept

    def fit(self, examples: Sequence[Mapping]) -> BiasOnlyModel:
        """Fit on examples with ``label`` in ``classes``."""
        unknown = sorted({e["label"] for e in examples} - set(self.classes))
        if unknown:
            raise ValueError(f"labels {unknown} are not in the model's classes {list(self.classes)}")
        x = self._design(featurize(examples))
        y = np.array([self.classes.index(e["label"]) for e in examples])
        k = len(self.classes)
        onehot = np.eye(k)[y]

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            W = w.reshape(x.shape[1], k)
            logp = log_softmax(x @ W, axis=1)
            reg = self.l2 * np.sum(W[:-1] ** 2)
            grad = x.T @ (np.exp(logp) - onehot) / len(y) + 2 * self.l2 * np.vstack([W[:-1], np.zeros((1, k))])
            return -np.mean(np.sum(onehot * logp, axis=1)) + reg, grad.ravel()

        res = minimize(loss, np.zeros(x.shape[1] * k), jac=True, method="L-BFGS-B")
        self.coef_ = res.x.reshape(x.shape[1], k)
        return self

    def predict_proba(self, examples: Sequence[Mapping]) -> np.ndarray:
        """[n, len(classes)] probabilities, columns in ``classes`` order."""
        if self.coef_ is None:
            raise RuntimeError("BiasOnlyModel is not fitted")
        return np.exp(log_softmax(self._design(featurize(examples)) @ self.coef_, axis=1))

    def predict(self, examples: Sequence[Mapping]) -> list[str]:
        return [self.classes[i] for i in self.predict_proba(examples).argmax(1)]

    def check_classes(self, id2label: Labels) -> None:
        """Raise ValueError naming both orders if the main model's label order differs from ``classes``."""
        check_label_order(self.classes, id2label, names=("bias-only model", "main model"))

    @staticmethod
    def _design(f: np.ndarray) -> np.ndarray:
        return np.hstack([f, np.ones((len(f), 1))])


def fit_bias_only(examples: Sequence[Mapping], classes: tuple[str, ...] = LABELS, l2: float = 1e-3) -> BiasOnlyModel:
    """Fit a ``BiasOnlyModel`` on labelled examples."""
    return BiasOnlyModel(classes=tuple(classes), l2=l2).fit(examples)
