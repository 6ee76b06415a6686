"""ResNet and ViT site maps: capture equals the modules' own outputs, and CKA works on image pairs."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from interp import capture, cka_grid, load_subject
from interp.arch import stage_sites
from interp.backends import hooks
from interp.data.vision import coloured_digits, waterbirds
from interp.train.vision import tiny_resnet, tiny_vit

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ("a", "b", "c")


def _resnet(**kw):
    return load_subject(tiny_resnet(NAMES, **{"hidden_sizes": (8, 16), "depths": (2, 1), **kw}), device="cpu")


def _manual(model, pixels) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Module outputs by hand-registered hooks (names by stage/block, not by the site map)."""
    out, handles = {}, []
    handles.append(model.resnet.embedder.register_forward_hook(lambda m, a, o: out.__setitem__("embed", o)))
    l = 0
    for stage in model.resnet.encoder.stages:
        for blk in stage.layers:
            handles.append(blk.register_forward_hook(lambda m, a, o, l=l: out.__setitem__(f"{l}.post", o)))
            handles.append(blk.layer.register_forward_hook(lambda m, a, o, l=l: out.__setitem__(f"{l}.branch", o)))
            l += 1
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
    for h in handles:
        h.remove()
    return out, logits


def test_resnet_sites_equal_hooked_module_outputs():
    s = _resnet()
    data = coloured_digits(12, n_classes=3, size=32)
    want, want_logits = _manual(s.model, data.images)
    assert s.n_layers == 3 and s.sites()[1:3] == ["blocks.0.hook_branch_out", "blocks.0.hook_resid_post"]
    logits, cache = s.run(data.images, read="*")
    torch.testing.assert_close(logits, want_logits, rtol=0, atol=0)
    torch.testing.assert_close(cache["embed"], want["embed"], rtol=0, atol=0)
    for l in range(3):
        assert cache[f"blocks.{l}.hook_resid_post"].dim() == 4  # [batch, channels, h, w]
        torch.testing.assert_close(cache[f"blocks.{l}.hook_resid_post"], want[f"{l}.post"], rtol=0, atol=0)
        torch.testing.assert_close(cache[f"blocks.{l}.hook_branch_out"], want[f"{l}.branch"], rtol=0, atol=0)
    # stage outputs against the model's own hidden states (embedder output, then one per stage)
    hidden = s.model(pixel_values=data.images, output_hidden_states=True).hidden_states
    assert stage_sites(s.model, s.arch) == ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]
    for site, h in zip(stage_sites(s.model, s.arch), hidden[1:]):
        torch.testing.assert_close(cache[site], h, rtol=0, atol=0)

    pooled = capture(s, data.examples(), "*", batch_size=5, progress=False)  # default pool: spatial mean
    flat = capture(s, data.examples(), "blocks.2.*", pool="flatten", batch_size=5, progress=False)
    for l in range(3):
        torch.testing.assert_close(pooled.acts[f"blocks.{l}.hook_resid_post"], want[f"{l}.post"].mean((2, 3)))
    torch.testing.assert_close(flat.acts["blocks.2.hook_resid_post"], want["2.post"].flatten(1))
    torch.testing.assert_close(pooled.acts["logits"], want_logits)
    with pytest.raises(ValueError, match="feature maps"):
        capture(s, data.examples(), "*", pool="cls", progress=False)


def test_resnet_writes_and_resume_match_manual_forwards():
    s = _resnet()
    x = coloured_digits(6, n_classes=3, size=32).images
    # zeroing block 1's residual branch: its output becomes relu(shortcut(input)) = relu(input)
    blk = s.model.resnet.encoder.stages[0].layers[1]
    handle = blk.layer.register_forward_hook(lambda m, a, o: torch.zeros_like(o))
    with torch.no_grad():
        want = s.model(pixel_values=x).logits
    handle.remove()
    got, cache = s.run(x, read="blocks.1.hook_resid_post", write={"blocks.1.hook_branch_out": torch.zeros_like})
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    _, before = s.run(x, read="blocks.0.hook_resid_post")
    torch.testing.assert_close(cache["blocks.1.hook_resid_post"], torch.relu(before["blocks.0.hook_resid_post"]))
    # resuming at block 2 from block 1's output gives the full forward's logits
    full, c = s.run(x, read="blocks.1.hook_resid_post")
    with torch.no_grad():
        resumed, _ = hooks.run_from(s, 2, c["blocks.1.hook_resid_post"], {})
    torch.testing.assert_close(resumed, full, rtol=1e-6, atol=1e-6)


def _linear_cka64(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean(0)
    y = y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_cka_on_a_resnet_pair():
    teacher, student = _resnet(seed=1), _resnet(hidden_sizes=(4, 8), depths=(1, 1), seed=2)
    data = waterbirds(64, size=32)
    ct = capture(teacher, data.examples(), "blocks.*.hook_resid_post", progress=False)
    cs = capture(student, data.examples(), "blocks.*.hook_resid_post", progress=False)
    grid = cka_grid(ct, cs)
    assert grid.grid.shape == (3, 2)
    want, _ = _manual(teacher.model, data.images)
    want_s, _ = _manual(student.model, data.images)
    ref = _linear_cka64(want["2.post"].mean((2, 3)).double().numpy(), want_s["1.post"].mean((2, 3)).double().numpy())
    assert grid["blocks.2.hook_resid_post", "blocks.1.hook_resid_post"] == pytest.approx(ref, abs=1e-6)
    self_grid = cka_grid(ct)
    np.testing.assert_allclose(np.diag(self_grid.grid), 1.0, atol=1e-10)
    # invariance: a copy with its last stage re-initialised is identical (CKA 1) before that stage only
    changed = copy.deepcopy(teacher.model)
    torch.manual_seed(9)
    for m in changed.resnet.encoder.stages[1].modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    cc = capture(load_subject(changed, device="cpu"), data.examples(), "blocks.*.hook_resid_post", progress=False)
    diag = np.diag(cka_grid(ct, cc).grid)
    np.testing.assert_allclose(diag[:2], 1.0, atol=1e-10)
    assert diag[2] < 0.99


def test_cka_on_a_vit_pair_and_token_level_capture():
    t = load_subject(tiny_vit(NAMES, layers=3, seed=1), device="cpu")
    s = load_subject(tiny_vit(NAMES, layers=2, d=16, heads=2, seed=2), device="cpu")
    data = coloured_digits(48, n_classes=3)
    ct = capture(t, data.examples(), "blocks.*.hook_resid_post", progress=False)
    cs = capture(s, data.examples(), "blocks.*.hook_resid_post", progress=False)
    assert cka_grid(ct, cs).grid.shape == (3, 2)
    np.testing.assert_allclose(np.diag(cka_grid(ct).grid), 1.0, atol=1e-10)
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(0)))
    rotated = {"r": ct.acts["blocks.1.hook_resid_post"] @ q * 3.0 + 7.0}  # orthogonal map, scale, shift
    assert float(cka_grid({"x": ct.acts["blocks.1.hook_resid_post"]}, rotated).grid[0, 0]) == pytest.approx(1, abs=1e-6)
    tok = capture(t, data.examples()[:5], "blocks.0.hook_resid_post", pool="none", progress=False)
    _, cache = t.run(data.images[:5], read="blocks.0.hook_resid_post")
    assert tok.acts["blocks.0.hook_resid_post"].shape == (5, 17, 32) and tok.mask.shape == (5, 17)  # was 0 positions
    torch.testing.assert_close(tok.acts["blocks.0.hook_resid_post"], cache["blocks.0.hook_resid_post"])


def test_resnet_refuses_other_backends():
    with pytest.raises(ValueError, match="backend cannot run ResNetForImageClassification"):
        load_subject(tiny_resnet(NAMES), backend="nnsight", device="cpu")
