"""Debiasing and KD losses against hand-computed values and float64 reference formulas."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interp.train import losses as L


def _data(seed=0, b=16, c=3):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, c, generator=g, dtype=torch.float64) * 2
    pb = torch.softmax(torch.randn(b, c, generator=g, dtype=torch.float64) * 2, -1)
    y = torch.randint(0, c, (b,), generator=g)
    zt = torch.randn(b, c, generator=g, dtype=torch.float64) * 3
    return z, pb, y, zt


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_poe_matches_reference():
    z, pb, y, _ = _data()
    zn, pbn, yn = z.numpy(), pb.numpy(), y.numpy()
    comb = _np_log_softmax(_np_log_softmax(zn) + np.log(pbn))
    ref = -comb[np.arange(len(yn)), yn].mean()
    assert L.poe_loss(z, pb, y).item() == pytest.approx(ref, rel=1e-12)


def test_poe_hand_value():
    # z = [0, 0], p_b = [0.8, 0.2], y = 1: p = softmax(log .5 + log .8, log .5 + log .2) -> [0.8, 0.2]
    z = torch.zeros(1, 2, dtype=torch.float64)
    pb = torch.tensor([[0.8, 0.2]], dtype=torch.float64)
    assert L.poe_loss(z, pb, torch.tensor([1])).item() == pytest.approx(-math.log(0.2))


def test_poe_uniform_bias_equals_ce_and_grad():
    z, _, y, _ = _data(1)
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    uni = torch.full_like(z, 1 / 3)
    a = L.poe_loss(z1, uni, y)
    b = F.cross_entropy(z2, y)
    a.backward(), b.backward()
    assert a.item() == pytest.approx(b.item(), rel=1e-12)
    assert torch.allclose(z1.grad, z2.grad, atol=1e-14)


def test_poe_bias_gets_no_gradient():
    z, pb, y, _ = _data(2)
    pb = pb.clone().requires_grad_(True)
    z = z.requires_grad_(True)
    L.poe_loss(z, pb, y).backward()
    assert pb.grad is None


def test_reweight_matches_reference_both_normalisations():
    z, pb, y, _ = _data(3)
    ce = F.cross_entropy(z, y, reduction="none").numpy()
    w = 1 - pb.numpy()[np.arange(len(y)), y.numpy()]
    assert L.reweight_loss(z, pb, y).item() == pytest.approx((w * ce).sum() / len(y), rel=1e-12)
    assert L.reweight_loss(z, pb, y, normalize="weights").item() == pytest.approx((w * ce).sum() / w.sum(), rel=1e-12)
    # p_b = 0 -> weights 1 -> ERM
    zero = torch.zeros_like(pb)
    assert L.reweight_loss(z, zero, y).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-12)
    with pytest.raises(ValueError):
        L.reweight_loss(z, pb, y, normalize="nope")


def test_conf_reg_targets_and_loss():
    # hand value: p_t = [0.9, 0.1], p_b(y) = 0.5 -> [0.9^.5, 0.1^.5] / sum = [0.75, 0.25]
    pt = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    pb = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    y = torch.tensor([0])
    s = L.conf_reg_targets(pt, pb, y)
    assert s[0].tolist() == pytest.approx([0.75, 0.25], rel=1e-12)
    # p_b(y) = 1 -> uniform; p_b(y) = 0 -> teacher probabilities unchanged
    assert L.conf_reg_targets(pt, torch.tensor([[1.0, 0.0]], dtype=torch.float64), y)[0].tolist() == pytest.approx([0.5, 0.5])
    assert L.conf_reg_targets(pt, torch.tensor([[0.0, 1.0]], dtype=torch.float64), y)[0].tolist() == pytest.approx([0.9, 0.1])
    # float64 reference on random data
    z, pb, y, zt = _data(4)
    ptn = torch.softmax(zt, -1).numpy()
    e = (1 - pb.numpy()[np.arange(len(y)), y.numpy()])[:, None]
    sref = ptn ** e
    sref /= sref.sum(-1, keepdims=True)
    ref = -(sref * _np_log_softmax(z.numpy())).sum(-1).mean()
    assert L.conf_reg_loss(z, torch.softmax(zt, -1), pb, y).item() == pytest.approx(ref, rel=1e-10)


def test_focal_reference_and_limits():
    z, pb, y, _ = _data(5)
    ce = F.cross_entropy(z, y, reduction="none").numpy()
    w = 1 - pb.numpy()[np.arange(len(y)), y.numpy()]
    assert L.focal_loss(z, pb, y, gamma=2.0).item() == pytest.approx((w ** 2 * ce).mean(), rel=1e-12)
    zero = torch.zeros_like(pb)
    assert L.focal_loss(z, zero, y, gamma=0.0).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-12)
    assert L.focal_loss(z, pb, y, gamma=0.0).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-12)
    # gamma=1 equals reweighting (batch normalisation)
    assert L.focal_loss(z, pb, y, gamma=1.0).item() == pytest.approx(L.reweight_loss(z, pb, y).item(), rel=1e-12)


def test_kd_reference():
    z, _, y, zt = _data(6)
    for T, a in [(1.0, 0.5), (4.0, 0.9), (20.0, 1.0)]:
        pt = np.exp(_np_log_softmax(zt.numpy() / T))
        kl = (pt * (np.log(pt) - _np_log_softmax(z.numpy() / T))).sum(-1).mean()
        ce = F.cross_entropy(z, y).item()
        ref = a * T * T * kl + (1 - a) * ce
        assert L.kd_loss(z, zt, y, temperature=T, alpha=a).item() == pytest.approx(ref, rel=1e-10)
        # matches torch's batchmean KL
        tk = F.kl_div(F.log_softmax(z / T, -1), F.log_softmax(zt / T, -1), reduction="batchmean", log_target=True)
        assert (a * T * T * tk + (1 - a) * ce).item() == pytest.approx(ref, rel=1e-10)


def test_kd_alpha0_is_ce_and_alpha1_needs_no_labels():
    z, _, y, zt = _data(7)
    assert L.kd_loss(z, zt, y, temperature=3.0, alpha=0.0).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-12)
    assert L.kd_loss(z, zt, None, temperature=3.0, alpha=1.0).item() > 0
    assert L.kd_loss(zt, zt, None, temperature=3.0, alpha=1.0).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        L.kd_loss(z, zt, None, alpha=0.5)
    with pytest.raises(ValueError):
        L.kd_loss(z, zt, y, temperature=0.0)


def test_kd_t2_scaling_keeps_gradient_magnitude_comparable():
    # small logits (the high-T regime): gradient of T^2 KL -> (z_s - z_t)/C as T grows, independent of T
    g = torch.Generator().manual_seed(8)
    zt = torch.randn(32, 3, generator=g, dtype=torch.float64)
    z0 = torch.randn(32, 3, generator=g, dtype=torch.float64)
    norms, raw = [], []
    for T in [2.0, 4.0, 10.0, 20.0, 40.0]:
        z = z0.clone().requires_grad_(True)
        L.kd_loss(z, zt, None, temperature=T, alpha=1.0).backward()
        norms.append(z.grad.norm().item())
        z2 = z0.clone().requires_grad_(True)
        (L.kd_loss(z2, zt, None, temperature=T, alpha=1.0) / (T * T)).backward()
        raw.append(z2.grad.norm().item())
    assert max(norms) / min(norms) < 1.5
    assert raw[0] / raw[-1] > 100  # without T^2 the gradient would vanish like 1/T^2


def test_shape_errors():
    z, pb, y, _ = _data()
    with pytest.raises(ValueError):
        L.poe_loss(z, pb[:, :2], y)
    with pytest.raises(ValueError):
        L.poe_loss(z, pb, y[:3])
    with pytest.raises(ValueError):
        L.focal_loss(z, pb, y, gamma=-1)


def test_reduction_none_shapes():
    z, pb, y, zt = _data()
    for v in [L.poe_loss(z, pb, y, reduction="none"), L.focal_loss(z, pb, y, reduction="none"),
              L.kd_loss(z, zt, y, reduction="none"), L.conf_reg_loss(z, torch.softmax(zt, -1), pb, y, reduction="none")]:
        assert v.shape == (z.shape[0],)
