"""Circuits on a pre-LayerNorm encoder (ViT): edge scores, circuit runs and node circuits against brute force
written with plain hooks on the HuggingFace modules (no interp.circuits or interp.engine code), AtP against
exact edge patching where the model is near-linear, and the planted ViT circuit recovered.

Edge semantics checked here: receiver r reads LN(sum of its senders' outputs); x_r(s) is the base run's
stream at r with sender s's output changed to its source value; heads read it through their layer's
attention LayerNorm, MLPs through the MLP LayerNorm, the classifier through the final one (in its head)."""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from conftest import make_vit

from interp.circuits import (
    Edge,
    _edge_effects,
    all_edges,
    auroc,
    discover,
    edge_scores,
    evaluate_edges,
    evaluate_nodes,
    node_names,
    node_scores,
)
from interp.contrast import LogOdds, make_contrast
from interp.organisms import PlantedCircuit, planted_vit_circuit, planted_vit_pairs
from interp.patching import endpoint_metrics
from interp.subject import load_subject

pytestmark = pytest.mark.usefixtures("one_thread", "softmax64")


@pytest.fixture
def softmax64(monkeypatch):
    """HF's eager ViT attention takes its softmax in float32 even for a float64 model; brute force to 1e-9 needs
    float64 throughout, so the test models' attention softmax runs in the model's dtype."""
    import transformers.models.vit.modeling_vit as vit

    def eager(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        w = torch.matmul(query, key.transpose(2, 3)) * (query.size(-1) ** -0.5 if scaling is None else scaling)
        if attention_mask is not None:
            w = w + attention_mask
        w = torch.softmax(w, dim=-1)
        return torch.matmul(w, value).transpose(1, 2).contiguous(), w
    monkeypatch.setattr(vit, "eager_attention_forward", eager)
METRIC = LogOdds(1)


def _vit(n_layers: int = 3, seed: int = 3):
    m = make_vit(n_layers=n_layers, d=32, heads=4, seed=seed).double()
    with torch.no_grad():
        for name, p in m.named_parameters():  # larger weights: effects well above float rounding
            if p.dim() > 1:
                p.mul_(30.0 if name.startswith("classifier") else 3.0)
    return load_subject(m)


def _images(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"id": f"i{seed}_{i}", "pixel_values": torch.rand(3, 16, 16, generator=g, dtype=torch.float64)}
            for i in range(n)]


def _contrast(s, n: int = 5, eps: float | None = None):
    clean = _images(n, 1)
    if eps is None:
        corrupt = _images(n, 2)
    else:  # near copies: the model is near-linear between clean and corrupted
        corrupt = [dict(x, id=f"r{i}", pixel_values=x["pixel_values"] + eps * y["pixel_values"])
                   for i, (x, y) in enumerate(zip(clean, _images(n, 2)))]
    return make_contrast(s, clean, corrupt, metric=METRIC)


# --- brute force through plain hooks ---------------------------------------------------------------
def _record(model, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Embedding output, per layer the o_proj input (z, flat), attn_out, mlp_out and layer output."""
    rec: dict[str, torch.Tensor] = {}
    put = rec.__setitem__
    hs = [model.vit.embeddings.register_forward_hook(lambda m, a, o: put("embed", o))]
    for l, blk in enumerate(model.vit.layers):
        hs.append(blk.attention.o_proj.register_forward_pre_hook(lambda m, a, l=l: put(f"z{l}", a[0])))
        hs.append(blk.attention.o_proj.register_forward_hook(lambda m, a, o, l=l: put(f"attn{l}", o)))
        hs.append(blk.mlp.register_forward_hook(lambda m, a, o, l=l: put(f"mlp{l}", o)))
        hs.append(blk.register_forward_hook(lambda m, a, o, l=l: put(f"out{l}", o[0] if isinstance(o, tuple) else o)))
    with torch.no_grad():
        model(pixel_values=pixels)
    for h in hs:
        h.remove()
    return rec


def _stream(model, rec: dict, e: Edge) -> torch.Tensor:
    """The base stream receiver e reads (before its LayerNorm) [B, pos, d]."""
    L = len(model.vit.layers)
    if e.receiver == "logits":
        return rec[f"out{L - 1}"]
    l = int(e.receiver[1:].split("H")[0].rstrip("M"))
    pre = rec["embed"] if l == 0 else rec[f"out{l - 1}"]
    return pre + rec[f"attn{l}"] if e.kind == "in" else pre


def _delta(model, base: dict, src: dict, sender: str) -> torch.Tensor:
    """Change of the stream when `sender` alone takes its source output [B, pos, d]."""
    if sender == "input":
        return src["embed"] - base["embed"]
    if sender.endswith("M"):
        l = int(sender[1:-1])
        return src[f"mlp{l}"] - base[f"mlp{l}"]
    l, h = map(int, sender[1:].split("H"))
    dh = model.config.hidden_size // model.config.num_attention_heads
    cols = slice(h * dh, (h + 1) * dh)
    W = model.vit.layers[l].attention.o_proj.weight[:, cols]  # [d, d_head]
    return (src[f"z{l}"][..., cols] - base[f"z{l}"][..., cols]) @ W.T


def _ln(model, e: Edge) -> torch.nn.Module:
    if e.receiver == "logits":
        return torch.nn.Identity()  # the head applies the final LayerNorm itself
    l = int(e.receiver[1:].split("H")[0].rstrip("M"))
    blk = model.vit.layers[l]
    return blk.layernorm_after if e.kind == "in" else blk.layernorm_before


def _metric_reading(model, pixels: torch.Tensor, e: Edge, x: torch.Tensor) -> torch.Tensor:
    """Per-example metric [B] when receiver e alone reads x (after its LayerNorm; logits: the stream)."""
    hs = []
    if e.receiver == "logits":
        hs.append(model.vit.layernorm.register_forward_pre_hook(lambda m, a: (x,)))
    elif e.kind == "in":
        hs.append(model.vit.layers[int(e.receiver[1:-1])].mlp.register_forward_pre_hook(lambda m, a: (x,)))
    else:
        l, h = map(int, e.receiver[1:].split("H"))
        lin = getattr(model.vit.layers[l].attention, f"{e.kind}_proj")
        dh = model.config.hidden_size // model.config.num_attention_heads
        rows = slice(h * dh, (h + 1) * dh)

        def hook(m, a, out):
            out = out.clone()
            out[..., rows] = F.linear(x, m.weight[rows], m.bias[rows])
            return out
        hs.append(lin.register_forward_hook(hook))
    try:
        with torch.no_grad():
            return METRIC(model(pixel_values=pixels).logits).double()
    finally:
        for h in hs:
            h.remove()


EDGES = ["input->L0H1.q", "input->L1H0.k", "L0H2->L1H3.v", "L0M->L2H1.q", "L1H1->L1M.in", "input->L0M.in",
         "L2H0->logits.in", "L1M->logits.in", "L0H3->L2M.in", "L2H2->L2M.in", "L1H2->L2H3.k", "input->logits.in"]


@pytest.mark.parametrize("direction", ["noise", "denoise"])
def test_exact_and_atp_edges_equal_brute_force(direction):
    """exact: m when r reads LN(x_r + delta_s) minus m at base; atp: d/dt m(LN(x_r) + t (LN(x_r + delta_s) -
    LN(x_r))) at t = 0 by a central difference (the classifier: the stream itself, its LN in the head)."""
    s = _vit()
    c = _contrast(s)
    exact = _edge_effects(s, c, "exact", direction, batch_size=8)[0]
    atp = _edge_effects(s, c, "atp", direction, batch_size=8)[0]
    base_px, src_px = (c.clean, c.corrupt) if direction == "noise" else (c.corrupt, c.clean)
    base_px, src_px = base_px["pixel_values"], src_px["pixel_values"]
    sign = -1.0 if direction == "noise" else 1.0
    m = s.model
    base, src = _record(m, base_px), _record(m, src_px)
    m0 = METRIC(m(pixel_values=base_px).logits).double()
    for name in EDGES:
        e = Edge.parse(name)
        ln = _ln(m, e)
        with torch.no_grad():
            xb = ln(_stream(m, base, e))
            xs = ln(_stream(m, base, e) + _delta(m, base, src, e.sender))
        torch.testing.assert_close(_metric_reading(m, base_px, e, xb), m0, atol=1e-10, rtol=0)  # hooks are sound
        ref = sign * float((_metric_reading(m, base_px, e, xs) - m0).mean().detach())
        assert exact[name] == pytest.approx(ref, abs=1e-9), name
        t = 1e-4
        dd = (_metric_reading(m, base_px, e, xb + t * (xs - xb)) - _metric_reading(m, base_px, e, xb - t * (xs - xb)))
        assert atp[name] == pytest.approx(sign * float(dd.mean()) / (2 * t), abs=1e-6), name
    assert max(abs(exact[n]) for n in EDGES) > 1e-2 and max(abs(exact[n] - atp[n]) for n in EDGES) > 1e-4


def test_atp_tends_to_exact_when_the_model_is_near_linear():
    """Corrupted images = clean + eps noise: AtP's error against exact edge patching, relative to the largest
    score, is small and falls with eps (first order in eps)."""
    def rel_error(eps: float) -> float:
        s = _vit(n_layers=2)
        c = _contrast(s, n=4, eps=eps)
        exact = _edge_effects(s, c, "exact", "noise", batch_size=8)[0]
        atp = _edge_effects(s, c, "atp", "noise", batch_size=8)[0]
        return max(abs(atp[k] - exact[k]) for k in exact) / max(abs(v) for v in exact.values())

    far, near, nearer = rel_error(1.0), rel_error(1e-2), rel_error(1e-3)
    assert nearer < 1e-2 and nearer < near / 5 and near < far, (far, near, nearer)


# --- circuit runs -------------------------------------------------------------------------------
def _circuit_run_reference(model, clean_px: torch.Tensor, corrupt_px: torch.Tensor, edges: set[str]) -> torch.Tensor:
    """The edge-circuit run written out by hand: each receiver reads LN(sum over senders of their circuit-run
    output if the edge is kept, else their corrupted output, plus the output biases); attention by hand."""
    cor = _record(model, corrupt_px)
    H = model.config.num_attention_heads
    dh = model.config.hidden_size // H
    with torch.no_grad():
        clean_embed = _record(model, clean_px)["embed"]
        circ: dict[str, torch.Tensor] = {"input": clean_embed}      # sender -> its output in this run [B, pos, d]
        corr: dict[str, torch.Tensor] = {"input": cor["embed"]}
        bias: list[torch.Tensor] = []                               # o_proj biases of earlier layers

        def stream(receiver: str, senders: list[str]) -> torch.Tensor:
            x = sum(circ[s] if f"{s}->{receiver}" in edges else corr[s] for s in senders)
            return x + sum(bias, torch.zeros(()))

        for l, blk in enumerate(model.vit.layers):
            att = blk.attention
            senders = list(circ)
            for h in range(H):
                rows = slice(h * dh, (h + 1) * dh)
                qkv = {k: F.linear(blk.layernorm_before(stream(f"L{l}H{h}.{k}", senders)),
                                   getattr(att, f"{k}_proj").weight[rows], getattr(att, f"{k}_proj").bias[rows])
                       for k in "qkv"}                              # [B, pos, d_head]
                p = torch.softmax(qkv["q"] @ qkv["k"].transpose(1, 2) / dh ** 0.5, -1)
                circ[f"L{l}H{h}"] = (p @ qkv["v"]) @ att.o_proj.weight[:, rows].T
                corr[f"L{l}H{h}"] = cor[f"z{l}"][..., rows] @ att.o_proj.weight[:, rows].T
            bias.append(att.o_proj.bias)
            x = blk.layernorm_after(stream(f"L{l}M.in", list(circ)))
            circ[f"L{l}M"], corr[f"L{l}M"] = blk.mlp(x), cor[f"mlp{l}"]
        logits = model.classifier(model.vit.layernorm(stream("logits.in", list(circ)))[:, 0])
    return METRIC(logits).double()


def test_edge_circuit_run_equals_a_hand_written_run():
    s = _vit(n_layers=2)
    c = _contrast(s, n=4)
    full = all_edges(s)
    clean, corrupt = endpoint_metrics(s, c, allow_no_signal=True)
    assert abs(clean - corrupt) > 1e-2
    assert evaluate_edges(s, c, full) == pytest.approx(clean, abs=1e-9)   # all edges: the clean run
    assert evaluate_edges(s, c, []) == pytest.approx(corrupt, abs=1e-9)   # none: the corrupted run
    for seed in (0, 1):
        kept = set(random.Random(seed).sample(full, len(full) // 2))
        ref = float(_circuit_run_reference(s.model, c.clean["pixel_values"], c.corrupt["pixel_values"], kept).mean())
        got = evaluate_edges(s, c, kept)
        assert got == pytest.approx(ref, abs=1e-9)
        assert min(abs(got - clean), abs(got - corrupt)) > 1e-3  # a real mixture, not an endpoint


def test_node_circuit_run_equals_plain_hooks():
    """Heads/MLPs outside the node set take their corrupted outputs: o_proj input and mlp output replaced."""
    s = _vit(n_layers=2)
    c = _contrast(s, n=4)
    nodes = {"L0H1", "L0H3", "L0M", "L1H0", "L1H2"}
    m, cor = s.model, _record(s.model, c.corrupt["pixel_values"])
    dh = 8
    hs = []
    for l, blk in enumerate(m.vit.layers):
        off = [h for h in range(4) if f"L{l}H{h}" not in nodes]

        def z_hook(mod, a, l=l, off=off):
            z = a[0].clone()
            for h in off:
                z[..., h * dh:(h + 1) * dh] = cor[f"z{l}"][..., h * dh:(h + 1) * dh]
            return (z,)
        hs.append(blk.attention.o_proj.register_forward_pre_hook(z_hook))
        if f"L{l}M" not in nodes:
            hs.append(blk.mlp.register_forward_hook(lambda mod, a, o, l=l: cor[f"mlp{l}"]))
    with torch.no_grad():
        ref = float(METRIC(m(pixel_values=c.clean["pixel_values"]).logits).double().mean())
    for h in hs:
        h.remove()
    clean, corrupt = endpoint_metrics(s, c, allow_no_signal=True)
    assert evaluate_nodes(s, c, nodes) == pytest.approx(ref, abs=1e-9)
    assert evaluate_nodes(s, c, node_names(s)) == pytest.approx(clean, abs=1e-9)
    assert min(abs(ref - clean), abs(ref - corrupt)) > 1e-3


# --- the planted circuit ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted():
    torch.set_num_threads(1)
    s = load_subject(planted_vit_circuit().model)
    return s, make_contrast(s, *planted_vit_pairs(12), metric=LogOdds(0))


def test_planted_vit_edges_and_nodes_rank_first(planted):
    s, c = planted
    for method in ("exact", "atp", "ig"):
        scores = edge_scores(s, c, method=method, direction="noise")[0]
        top = sorted(scores, key=lambda k: -abs(scores[k]))[:3]
        assert set(top) == set(PlantedCircuit.edges), (method, top)
        assert auroc(scores, PlantedCircuit.edges) == 1.0
    exact = edge_scores(s, c, method="exact")[0]
    for e in PlantedCircuit.edges:  # each planted edge alone carries the whole gap (a serial path)
        assert exact[e] == pytest.approx(1.0, abs=0.02), e
    nodes = node_scores(s, c)[0]
    assert set(sorted(nodes, key=lambda k: -abs(nodes[k]))[:2]) == set(PlantedCircuit.nodes)


def test_discover_recovers_the_planted_vit_circuit(planted):
    s, c = planted
    node = discover(s, c, level="node", method="exact", target=0.9)
    assert set(node.nodes) == set(PlantedCircuit.nodes), node.nodes
    edge = discover(s, c, level="edge", method="atp", target=0.9)
    assert set(edge.edges) == set(PlantedCircuit.edges), edge.edges
    for circ in (node, edge):
        assert circ.metadata["faithfulness"] >= 0.9 and circ.metadata["completeness"] > 0.9
