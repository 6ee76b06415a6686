"""The explorer builds for a ViT pair: the planted-circuit ViT as teacher (its answer known) and a random
1-layer ViT student, on image examples and image contrast pairs; its numbers against plain forwards."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.explore import explore
from interp.explore.data import decode_attention
from interp.explore.html import extract_json
from interp.organisms import PlantedCircuit, planted_vit_circuit, planted_vit_pairs
from interp.subject import load_subject
from interp.train.vision import tiny_vit

pytestmark = pytest.mark.usefixtures("one_thread")


def test_explorer_builds_for_a_vit_pair(tmp_path):
    teacher_model = planted_vit_circuit().model
    t = load_subject(teacher_model, name="teacher")
    s = load_subject(tiny_vit(("marked", "b", "c"), layers=1, seed=2), name="student")
    clean, corrupt = planted_vit_pairs(8)
    view = explore(t, s, out=tmp_path / "vit.html", pairs=(clean, corrupt), examples=clean[:5])
    d = view.data
    assert extract_json((tmp_path / "vit.html").read_text()) == d
    assert set(d["missing"]) == {"head_by_head", "attribution"}  # only what needs an `interp compare` folder
    assert d["teacher"] == {"name": "teacher", "n_layers": 2, "n_heads": 4} and d["layer_map"] in ({"0": 0}, {"0": 1})
    assert np.asarray(d["cka"]["grid"]).shape == (2, 1)

    # examples: [CLS] + 16 patches, the metric (log-odds of label 0) and patterns of a plain forward
    pix = torch.stack([ex["pixel_values"] for ex in clean[:5]])
    with torch.no_grad():
        out = teacher_model(pixel_values=pix, output_attentions=True)
    z = out.logits.double()
    want = z[:, 0] - torch.logsumexp(z[:, 1:], dim=1)
    for i, ex in enumerate(d["examples"]):
        assert len(ex["tokens"]) == 17 and ex["tokens"][0] == "[CLS]"
        assert ex["metric"]["teacher"] == pytest.approx(float(want[i]), abs=1e-4)
        att = decode_attention(d["attention"]["teacher"][i], 2, 4, 17)
        ref = torch.stack([a[i] for a in out.attentions]).numpy()  # [layer, head, 17, 17]
        assert np.abs(att - ref).max() <= 0.5 / 255 + 1e-6

    # the teacher's answer is known: its patching map and circuit find the planted heads and edges
    scores = np.asarray(d["patching"]["teacher"]["scores"])  # [layer, head]
    top = {f"L{l}H{h}" for l, h in zip(*np.unravel_index(np.argsort(-np.abs(scores), axis=None)[:2], scores.shape))}
    assert top == set(PlantedCircuit.nodes)
    assert {e for e, _ in d["circuits"]["teacher"]["edges"]} == set(PlantedCircuit.edges)
