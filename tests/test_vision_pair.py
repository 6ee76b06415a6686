"""Cross-model attribution on a ViT pair: head effects and cross-model patching against plain hooks and a
known answer (a student copied from the teacher with one head killed). Weight patching on ViT pairs is
checked in test_weight_patching.py (test_vit_sweep_equals_full_forwards)."""
from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from interp.compare import head_effects
from interp.contrast import LogOdds
from interp.cross_patch import cross_patch
from interp.data.vision import coloured_digits
from interp.pair import make_pair, match_heads
from interp.subject import load_subject
from interp.train.vision import tiny_vit

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ("a", "b", "c")


def _teacher():
    m = tiny_vit(NAMES, layers=2, seed=4)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() > 1:
                p.mul_(10.0 if name.startswith("classifier") else 2.0)
    return m


def test_head_effects_on_a_vit_equal_plain_hooks():
    """Total effect of mean-ablating head (l, h): its z replaced by the mean over every image and position."""
    model = _teacher()
    s = load_subject(model)
    data = coloured_digits(6, n_classes=3)
    res = head_effects(s, data.examples(), metric=LogOdds(0), progress=False)
    pix = data.images
    z: dict[int, torch.Tensor] = {}
    hs = [blk.attention.o_proj.register_forward_pre_hook(lambda m, a, l=l: z.__setitem__(l, a[0]))
          for l, blk in enumerate(model.vit.layers)]
    with torch.no_grad():
        base = LogOdds(0)(model(pixel_values=pix).logits)
    for h in hs:
        h.remove()
    dh = 8
    for l in range(2):
        for h in range(4):
            cols = slice(h * dh, (h + 1) * dh)
            mean = z[l][..., cols].mean((0, 1))  # [d_head]: every image, every position ([CLS] + patches)

            def hook(m, a, cols=cols, mean=mean):
                x = a[0].clone()
                x[..., cols] = mean
                return (x,)
            hd = model.vit.layers[l].attention.o_proj.register_forward_pre_hook(hook)
            with torch.no_grad():
                want = LogOdds(0)(model(pixel_values=pix).logits) - base
            hd.remove()
            torch.testing.assert_close(torch.as_tensor(res["total"][:, l, h]).float(), want, atol=1e-4, rtol=1e-4)
    assert abs(res["total"]).max() > 1e-2


@pytest.mark.filterwarnings("ignore:Heads with constant z")
def test_cross_patching_restores_a_killed_vit_head():
    """Student = teacher with head 1.2's value projection zeroed: patching the teacher's z of that head into the
    student gives back the teacher's logits exactly; patching any other head leaves the student's."""
    tm = _teacher()
    sm = copy.deepcopy(tm)
    with torch.no_grad():
        v = sm.vit.layers[1].attention.v_proj
        v.weight[16:24] = 0.0
        v.bias[16:24] = 0.0
    t, s = load_subject(tm, name="teacher"), load_subject(sm, name="student")
    data = coloured_digits(8, n_classes=3).examples()
    hm = match_heads(t, s, data, {0: 0, 1: 1})
    assert all(hm.matches[(l, h)] == (l, h) for l in range(2) for h in range(4) if (l, h) != (1, 2))
    assert hm.dead == [(1, 2)] and hm.matches[(1, 2)] is None  # constant z: no counterpart by similarity
    pair = make_pair(t, s, layer_map={0: 0, 1: 1})
    pair.head_map = replace(hm, matches={(l, h): (l, h) for l in range(2) for h in range(4)})
    out = cross_patch(pair, data, progress=False)
    assert (out["teacher"] - out["student"]).abs().max() > 1e-2
    torch.testing.assert_close(out["patched"]["head 1.2<-T1.2"], out["teacher"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["patched"]["head 1.0<-T1.0"], out["student"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["patched"]["layer 1<-T1"], out["teacher"], atol=1e-5, rtol=1e-5)
