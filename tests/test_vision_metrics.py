"""Individual (counterfactual) fairness and the image evaluation, on hand-computed and planted cases."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from interp.data.vision import waterbirds
from interp.metrics import individual_fairness, worst_group_accuracy
from interp.train.vision import evaluate_images


def test_individual_fairness_hand_computed():
    pred = [0, 1, 2, 1]
    cf1, cf2 = [0, 2, 2, 1], [1, 1, 2, 0]
    r = individual_fairness(pred, [cf1, cf2])
    assert r["per_counterfactual"] == [0.75, 0.5]
    assert r["consistency"] == pytest.approx(5 / 8)
    assert r["all_consistent"] == pytest.approx(1 / 4)  # only example 2 survives both
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    q = np.array([[0.0, 1.0], [0.5, 0.5]])
    r = individual_fairness([0, 0], [[1, 0]], probs=p, cf_probs=[q])
    assert r["mean_tv"] == pytest.approx(0.5)  # (1 + 0) / 2
    with pytest.raises(ValueError, match="at least one"):
        individual_fairness(pred, [])
    with pytest.raises(ValueError, match="must be"):
        individual_fairness(pred, [[0, 1]])


class _Rule(torch.nn.Module):
    """A planted classifier: logits from a rule on the pixels (no parameters to learn)."""

    def __init__(self, rule):
        super().__init__()
        self.rule = rule
        self.config = SimpleNamespace(num_labels=2)

    def forward(self, pixel_values):
        return SimpleNamespace(logits=self.rule(pixel_values))


def test_evaluate_images_on_planted_models():
    data = waterbirds(200, split="test", strength=None, size=16)
    # the background-only model: "water" when blue dominates red; predicts the attribute exactly
    by_background = _Rule(lambda x: torch.stack([x[:, 0].mean((1, 2)), x[:, 2].mean((1, 2))], -1) * 10)
    r = evaluate_images(by_background, data)
    pred = (data.attributes == 1).long()  # what it must predict
    assert r["accuracy"] == pytest.approx(float((pred == data.labels).double().mean()))
    assert r["accuracy"] == pytest.approx(data.measured_strength())
    assert r["worst_group_accuracy"] == 0.0 == worst_group_accuracy(data.labels, pred, data.groups)
    assert r["group_accuracy"]["landbird/land"] == 1.0 and r["group_accuracy"]["landbird/water"] == 0.0
    assert r["individual_fairness"]["consistency"] == 0.0  # flipping the background flips every prediction
    assert r["dpd"] == 1.0 and r["eod"] == 1.0
    # an attribute-blind (constant) model: perfectly consistent, no parity gap, accuracy = class share
    constant = _Rule(lambda x: torch.tensor([[1.0, 0.0]]).expand(x.shape[0], 2))
    r = evaluate_images(constant, data)
    assert r["individual_fairness"]["consistency"] == 1.0 and r["individual_fairness"]["mean_tv"] == 0.0
    assert r["dpd"] == 0.0 and r["accuracy"] == pytest.approx(float((data.labels == 0).double().mean()))
    assert r["per_class_accuracy"] == [1.0, 0.0]
