"""Group DRO (Sagawa et al. 2020) through the training loop: the exponentiated-gradient step against a hand
computation, and worst-group accuracy raised over ERM on coloured digits where ERM leans on the colour."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interp.data.vision import coloured_digits
from interp.metrics import worst_group_accuracy
from interp.train import losses as L
from interp.train.trainer import TrainConfig, predict_logits, train_model
from interp.train.vision import attribute_bias_probs, tiny_resnet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_group_dro_step_hand_computed():
    """Two classes; CE of logits (0, 0) is ln 2, of (ln 3, 0) is ln(4/3) for class 0 and ln 4 for class 1.
    Groups 0: {ln 2, ln 2}, 1: {ln 4}, 2: absent (loss 0). With eta = 1 from uniform q:
    q ~ (2, 4, 1) / 7 and the loss is (2 ln 2 + 4 ln 4) / 7 = 10 ln 2 / 7."""
    z = torch.tensor([[0.0, 0.0], [0.0, 0.0], [math.log(3), 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    g = torch.tensor([0, 0, 1])
    np.testing.assert_allclose(L.group_losses(L.erm_loss(z, y, reduction="none"), g, 3).numpy(),
                               [math.log(2), math.log(4), 0.0], rtol=1e-12)
    dro = L.GroupDRO(3, eta=1.0)
    loss = dro(z, y, g)
    np.testing.assert_allclose(dro.q.numpy(), [2 / 7, 4 / 7, 1 / 7], rtol=1e-12)
    assert float(loss) == pytest.approx(10 * math.log(2) / 7, rel=1e-12)
    # a second step on the same batch: q ~ (2 * 2, 4 * 4, 1) / 21 (the worst group gains again)
    loss = dro(z, y, g)
    np.testing.assert_allclose(dro.q.numpy(), [4 / 21, 16 / 21, 1 / 21], rtol=1e-12)
    assert float(loss) == pytest.approx((4 * math.log(2) + 16 * math.log(4)) / 21, rel=1e-12)
    # eta = 0 keeps q uniform: the loss is the unweighted mean of the group means
    flat = L.GroupDRO(3, eta=0.0)
    assert float(flat(z, y, g)) == pytest.approx(math.log(8) / 3, rel=1e-12)
    with pytest.raises(ValueError, match="group indices"):
        L.group_losses(torch.zeros(2), torch.tensor([0, 3]), 3)


def test_group_dro_and_poe_raise_worst_group_accuracy_where_erm_does_not():
    """Planted answer: colour predicts the digit in 90% of training images; ERM's worst group of the
    decorrelated test set is far below its mean, group DRO and PoE with the colour-only bias model (P(class |
    colour) counted on the training set) raise it."""
    train = coloured_digits(800, strength=0.9, n_classes=4)
    test = coloured_digits(600, split="test", strength=None, n_classes=4)
    cfg = dict(epochs=6, lr=3e-3, batch_size=32)
    pb = attribute_bias_probs(train.labels.numpy(), train.attributes.numpy(), 4)
    wga, hist = {}, {}
    for loss, kw in [("erm", {}), ("group_dro", {}), ("poe", {"bias_probs": pb})]:
        model = tiny_resnet(train.label_names)
        hist[loss] = train_model(model, None, train.examples(), TrainConfig(loss=loss, dro_eta=0.01, **cfg),
                                 progress=False, **kw)
        pred = predict_logits(model, None, test.examples()).argmax(-1)
        wga[loss] = worst_group_accuracy(test.labels, pred, test.groups)
    assert wga["erm"] < 0.3 and wga["group_dro"] > wga["erm"] + 0.5 and wga["poe"] > wga["erm"] + 0.2, wga
    q = np.array(list(hist["group_dro"]["dro_q"].values()))  # one weight per training group, moved off uniform
    assert len(q) == 16 and q.sum() == pytest.approx(1.0) and q.max() - q.min() > 0.005


def test_group_dro_needs_groups():
    data = coloured_digits(8, n_classes=2)
    examples = [{k: v for k, v in e.items() if k != "group"} for e in data.examples()]
    with pytest.raises(ValueError, match="'group'"):
        train_model(tiny_resnet(data.label_names), None, examples, TrainConfig(loss="group_dro"), progress=False)
    with pytest.raises(ValueError, match="dro_eta"):
        TrainConfig(loss="group_dro", dro_eta=-1.0)


def test_dro_step_size_is_recorded_only_for_group_dro():
    """Models cached before group DRO existed (the default zoo) must stay reusable: the step size is part of
    a model's recorded config only when the loss uses it."""
    from interp.train.config import LOSSES, TrainConfig

    for loss in LOSSES:
        d = TrainConfig(loss=loss).to_dict()
        assert ("dro_eta" in d) == (loss == "group_dro"), loss
    assert TrainConfig(loss="group_dro", dro_eta=0.5).to_dict()["dro_eta"] == 0.5
