"""The LeNet-5-style student (interp.lenet): its site map (stage outputs) equals hand-hooked module outputs,
capture / CKA work on a ResNet -> LeNet pair, and it trains by KD, saves and loads through the shared code."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import capture, cka_grid, load_subject
from interp.arch import stage_sites
from interp.backends import hooks
from interp.data.vision import trifeature
from interp.train.trainer import TrainConfig, load_trained, train_and_save
from interp.train.vision import tiny_lenet, tiny_resnet

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ("a", "b", "c")


def _manual(model, x):
    """Stage outputs computed by hand from the module weights: conv (same padding) -> ReLU -> 2x2 max pool."""
    outs, h = [], x
    for stage in model.lenet.stages:
        k = stage.conv.kernel_size[0]
        h = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(h, stage.conv.weight,
                                                                                  stage.conv.bias, padding=k // 2)), 2)
        outs.append(h)
    pooled = torch.nn.functional.adaptive_avg_pool2d(h, model.config.pool_size).flatten(1)
    return outs, model.classifier[1:](pooled)


def test_lenet_sites_equal_hand_computed_stages():
    s = load_subject(tiny_lenet(NAMES, channels=(4, 8), pool_size=2, fc=(12, 10), seed=1), device="cpu")
    x = trifeature(10, size=16, n_values=3).images
    outs, want_logits = _manual(s.model, x)
    assert s.sites() == ["embed", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "logits"]
    assert stage_sites(s.model, s.arch) == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    logits, cache = s.run(x, read="*")
    torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cache["embed"], x, rtol=0, atol=0)
    assert cache["blocks.0.hook_resid_post"].shape == (10, 4, 8, 8) and cache["blocks.1.hook_resid_post"].shape == (10, 8, 4, 4)
    for l in range(2):
        torch.testing.assert_close(cache[f"blocks.{l}.hook_resid_post"], outs[l], rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # resuming after stage 0 gives the full forward's logits
        resumed, _ = hooks.run_from(s, 1, cache["blocks.0.hook_resid_post"], {})
    torch.testing.assert_close(resumed, logits, rtol=1e-6, atol=1e-6)
    # writes: zeroing stage 1's output leaves only the classifier's biases
    zeroed, _ = s.run(x, write={"blocks.1.hook_resid_post": torch.zeros_like})
    torch.testing.assert_close(zeroed, s.model.classifier[1:](torch.zeros(10, 8 * 4)).detach())


def test_cka_and_kd_on_a_resnet_to_lenet_pair(tmp_path):
    data = trifeature(48, size=16, n_values=3, seed=2)
    t_path = train_and_save(tmp_path / "t", lambda: (tiny_resnet(data.label_names, hidden_sizes=(8, 16), seed=1), None),
                            data.examples(), TrainConfig(epochs=1, batch_size=16, lr=3e-3), progress=False)
    s_path = train_and_save(tmp_path / "s", lambda: (tiny_lenet(data.label_names, channels=(4, 8), pool_size=2,
                                                                fc=(12, 10), seed=2), None),
                            data.examples(), TrainConfig(loss="kd", epochs=1, batch_size=16, lr=3e-3, temperature=4.0),
                            teacher=t_path, progress=False)
    model, tok, rec = load_trained(s_path)
    assert tok is None and type(model).__name__ == "LeNetForImageClassification" and rec["status"] == "complete"
    assert rec["history"]["steps"] == 3
    teacher, student = load_subject(t_path, device="cpu"), load_subject(s_path, device="cpu")
    torch.testing.assert_close(student.run(data.images[:4])[0], model(pixel_values=data.images[:4]).logits)
    ct = capture(teacher, data.examples(), "blocks.*.hook_resid_post", progress=False)
    cs = capture(student, data.examples(), "blocks.*.hook_resid_post", progress=False)
    grid = cka_grid(ct, cs)
    assert grid.grid.shape == (2, 2)
    with torch.no_grad():
        outs, _ = _manual(student.model, data.images)
    _, cache = teacher.run(data.images, read="blocks.1.hook_resid_post")
    x = cache["blocks.1.hook_resid_post"].mean((2, 3)).double().numpy()
    y = outs[1].mean((2, 3)).double().numpy()
    x, y = x - x.mean(0), y - y.mean(0)
    ref = np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    assert grid["blocks.1.hook_resid_post", "blocks.1.hook_resid_post"] == pytest.approx(ref, abs=1e-6)
