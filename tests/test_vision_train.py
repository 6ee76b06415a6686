"""Image classifiers through the NLI training loop: KD, group reweighting and the attribute-only bias model."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from interp.data.vision import coloured_digits
from interp.metrics import worst_group_accuracy
from interp.train import losses as L
from interp.train.trainer import TrainConfig, load_trained, predict_logits, train_and_save, train_model
from interp.train.vision import attribute_bias_probs, group_weights, tiny_resnet, tiny_vit

pytestmark = pytest.mark.usefixtures("one_thread")


def test_group_weights_hand_computed():
    w = group_weights([0, 0, 0, 1, 5, 5])
    # n = 6, G = 3 groups of sizes 3, 1, 2: w = 6 / (3 * n_g)
    np.testing.assert_allclose(w, [2 / 3, 2 / 3, 2 / 3, 2.0, 1.0, 1.0])
    assert w.mean() == pytest.approx(1.0)
    assert w[:3].sum() == pytest.approx(w[3]) == pytest.approx(w[4:].sum())


def test_attribute_bias_probs_hand_computed():
    y = np.array([0, 0, 1, 1, 1])
    a = np.array([0, 0, 0, 1, 1])
    p = attribute_bias_probs(y, a, n_classes=2, smoothing=0.0)
    # attribute 0: classes (0, 0, 1) -> (2/3, 1/3); attribute 1: classes (1, 1) -> (0, 1)
    np.testing.assert_allclose(p, [[2 / 3, 1 / 3]] * 3 + [[0, 1]] * 2)
    ps = attribute_bias_probs(y, a, n_classes=2, smoothing=1.0)
    np.testing.assert_allclose(ps[0], [3 / 5, 2 / 5])
    np.testing.assert_allclose(ps[-1], [1 / 4, 3 / 4])
    np.testing.assert_allclose(ps.sum(1), 1.0)


def test_weighted_erm_loss_against_float64_formula():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    w = torch.tensor([0.5, 2.0, 1.0, 0.0, 3.0, 1.5], dtype=torch.float64)
    ce = torch.tensor([-(zi[yi] - torch.logsumexp(zi, 0)) for zi, yi in zip(z, y)], dtype=torch.float64)
    assert float(L.weighted_erm_loss(z, y, w)) == pytest.approx(float((w * ce).sum() / 6), rel=1e-12)
    assert float(L.weighted_erm_loss(z, y, w, normalize="weights")) == pytest.approx(
        float((w * ce).sum() / w.sum()), rel=1e-12)
    assert float(L.weighted_erm_loss(z, y, torch.ones(6, dtype=torch.float64))) == pytest.approx(
        float(L.erm_loss(z, y)), rel=1e-12)


@pytest.mark.parametrize("student_kind", ["vit", "resnet"])
def test_kd_on_images_uses_the_teachers_logits(student_kind):
    """The first step's loss is Hinton's KD of the student's (train-mode) logits against the teacher's
    eval-mode logits on exactly the first shuffled batch: the image path reuses loop, KD and batching."""
    data = coloured_digits(40, n_classes=3, seed=1)
    teacher = tiny_resnet(data.label_names, hidden_sizes=(8, 16), seed=3)
    student = tiny_vit(data.label_names, seed=4) if student_kind == "vit" else \
        tiny_resnet(data.label_names, hidden_sizes=(4, 8), seed=4)
    cfg = TrainConfig(loss="kd", epochs=1, batch_size=16, lr=1e-3, temperature=3.0, alpha=0.7, seed=5)
    before = copy.deepcopy(student).train()
    hist = train_model(student, None, data.examples(), cfg, teacher=teacher, progress=False)
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))[:16]
    with torch.no_grad():
        zs = before(pixel_values=data.images[idx]).logits
        zt = teacher(pixel_values=data.images[idx]).logits
    want = L.kd_loss(zs, zt, data.labels[idx], temperature=3.0, alpha=0.7)
    assert hist["loss_first"] == pytest.approx(float(want), rel=1e-5)
    assert hist["steps"] == 3 and not student.training


def test_group_reweighting_raises_worst_group_accuracy():
    """Planted answer: colour predicts the digit in 90% of training images. ERM leans on the colour
    (worst group of the decorrelated test set far below the mean); group reweighting does not."""
    train = coloured_digits(800, strength=0.9, n_classes=4)
    test = coloured_digits(800, split="test", strength=None, n_classes=4)
    cfg = dict(epochs=6, lr=3e-3, batch_size=32)
    wga = {}
    for loss, kw in [("erm", {}), ("group_reweight", {"example_weights": group_weights(train.groups)})]:
        model = tiny_resnet(train.label_names)
        train_model(model, None, train.examples(), TrainConfig(loss=loss, **cfg), progress=False, **kw)
        pred = predict_logits(model, None, test.examples()).argmax(-1)
        wga[loss] = worst_group_accuracy(test.labels, pred, test.groups)
    assert wga["erm"] < 0.5 and wga["group_reweight"] > wga["erm"] + 0.3, wga


def test_train_and_save_image_model_round_trip(tmp_path):
    from interp import load_subject
    data = coloured_digits(24, n_classes=3)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-3)
    out = train_and_save(tmp_path / "r", lambda: (tiny_resnet(data.label_names), None), data.examples(), cfg,
                         progress=False)
    model, tok, rec = load_trained(out)
    assert tok is None and type(model).__name__ == "ResNetForImageClassification" and rec["status"] == "complete"
    subject = load_subject(out, device="cpu")
    logits, _ = subject.run(data.images[:4])
    torch.testing.assert_close(logits, model(pixel_values=data.images[:4]).logits)
    assert subject.labels == ["0", "1", "2"]


def test_group_reweight_needs_weights():
    data = coloured_digits(8, n_classes=2)
    with pytest.raises(ValueError, match="example_weights"):
        train_model(tiny_resnet(data.label_names), None, data.examples(), TrainConfig(loss="group_reweight"),
                    progress=False)
    with pytest.raises(ValueError, match="example_weights must be"):
        train_model(tiny_resnet(data.label_names), None, data.examples(), TrainConfig(loss="group_reweight"),
                    example_weights=np.ones(3), progress=False)
