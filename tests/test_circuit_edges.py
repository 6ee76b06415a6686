"""Edge scores (interp.circuits.edges): equal to the per-receiver code they replaced, and to brute force
through explicit hooks on the HuggingFace modules (one edge at a time, float64): exact patching, attribution
patching as a directional derivative, EAP-IG as the average of directional derivatives along the path."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _circuits_reference import old_edge_effects
from conftest import make_pairs
from test_patching import _pairs, _subject

from interp.arch import get_module
from interp.backends.hooks import layer_inputs
from interp.circuits import Edge, _check_arch, _edge_effects, all_edges, edge_scores
from interp.contrast import LogOdds, make_contrast

pytestmark = pytest.mark.usefixtures("one_thread")


def _f64(kind: str = "bert"):
    s = _subject(kind)
    s.model.double()
    c = make_contrast(s, make_pairs(5, seed=11), make_pairs(5, seed=12), metric=LogOdds(1), align="pad")
    assert (c.clean["attention_mask"] == 0).any()  # padded pairs: the mask matters
    return s, c


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
@pytest.mark.parametrize("method", ["exact", "atp"])
@pytest.mark.parametrize("direction", ["noise", "denoise"])
def test_edge_effects_equal_the_old_per_receiver_code(kind, method, direction):
    s, c = _f64(kind)
    new, clean, corrupt = _edge_effects(s, c, method, direction, batch_size=3, max_rows=7)  # 2 batches, small chunks
    old, clean0, corrupt0 = old_edge_effects(s, c, method, direction, 3)
    assert list(new) == list(old) == all_edges(s)
    assert (clean, corrupt) == pytest.approx((clean0, corrupt0), abs=1e-12)
    diff = max(abs(new[e] - old[e]) for e in old)
    assert diff < 1e-6 * max(1.0, max(abs(v) for v in old.values()))
    assert sum(abs(v) > 1e-3 for v in old.values()) > len(old) // 4  # real effects, not zeros on both sides


# --- brute force: one edge at a time through explicit hooks -----------------------------------------
def _sender_only_input(s, c, edge: Edge, direction: str) -> torch.Tensor:
    """x_r(s) by a hooks forward pass: every z and mlp_out written to its base value but the sender's."""
    L = s.n_layers
    base_b, src_b = (c.clean, c.corrupt) if direction == "noise" else (c.corrupt, c.clean)
    sites = [f"blocks.{l}.{k}" for l in range(L) for k in ("attn.hook_z", "hook_mlp_out")]
    with torch.no_grad():
        _, base = s.run(base_b, read=sites)
        _, src = s.run(src_b, read=sites)
        write = {k: base[k].clone() for k in sites}
        run_on = base_b
        if edge.sender == "none":
            pass  # the base input of the receiver
        elif edge.sender == "input":
            run_on = src_b  # the source embedding; every component output is written to its base value
        elif edge.sender.endswith("M"):
            l = int(edge.sender[1:-1])
            write[f"blocks.{l}.hook_mlp_out"] = src[f"blocks.{l}.hook_mlp_out"]
        else:
            l, h = map(int, edge.sender[1:].split("H"))
            write[f"blocks.{l}.attn.hook_z"][:, :, h] = src[f"blocks.{l}.attn.hook_z"][:, :, h]
        if edge.receiver == "logits":
            site = f"blocks.{L - 1}.hook_resid_post"
        elif edge.kind == "in":
            site = f"blocks.{int(edge.receiver[1:-1])}.hook_resid_mid"
        else:
            l = int(edge.receiver[1:].split("H")[0])
            site = "embed" if l == 0 else f"blocks.{l - 1}.hook_resid_post"
        _, cache = s.run(run_on, read=[site], write=write)
    return cache[site]


def _receiver_metric(s, batch, edge: Edge, x: torch.Tensor, add: bool = False, embed: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """Per-pair metric [B] when receiver r alone reads x (add=True: its own input + x), every other module as
    usual; `embed` replaces the embedding output."""
    qn, kn, vn, mn = _check_arch(s)
    L, dh = s.n_layers, s.d_head
    handles, write = [], {}
    if embed is not None:
        write["embed"] = embed
    if edge.receiver == "logits":
        write[f"blocks.{L - 1}.hook_resid_post"] = (lambda v: v + x) if add else x
    elif edge.kind == "in":
        mod = get_module(s.layers[int(edge.receiver[1:-1])], mn)
        handles.append(mod.register_forward_pre_hook(lambda m, a: ((a[0] + x) if add else x,) + tuple(a[1:])))
    else:
        l, h = map(int, edge.receiver[1:].split("H"))
        lin = get_module(s.layers[l], {"q": qn, "k": kn, "v": vn}[edge.kind])
        rows = slice(h * dh, (h + 1) * dh)

        def hook(m, a, out):
            out = out.clone()
            if add:
                out[..., rows] += F.linear(x, m.weight[rows])
            else:
                out[..., rows] = F.linear(x, m.weight[rows], m.bias[rows])
            return out
        handles.append(lin.register_forward_hook(hook))
    try:
        with torch.no_grad():
            logits, _ = s.run(batch, write=write)
    finally:
        for hd in handles:
            hd.remove()
    return LogOdds(1)(logits).double()


EDGES = ["input->L0H1.q", "input->L1H0.k", "L0H2->L1H3.v", "L0M->L2H1.q", "L1H1->L1M.in", "input->L0M.in",
         "L2H0->logits.in", "L1M->logits.in", "L0H3->L2M.in", "L2H2->L2M.in", "L1H2->L2H3.k"]


@pytest.mark.parametrize("direction", ["noise", "denoise"])
def test_exact_and_atp_edges_equal_brute_force(direction):
    """exact: m with the receiver's input replaced by x_r(s); atp: d/dt m(x_r + t (x_r(s) - x_r)) at t = 0 by a
    central difference; both through hooks on the HuggingFace modules, no interp.circuits code."""
    s, c = _f64()
    exact = _edge_effects(s, c, "exact", direction, batch_size=8)[0]
    atp = _edge_effects(s, c, "atp", direction, batch_size=8)[0]
    base_b = c.clean if direction == "noise" else c.corrupt
    sign = -1.0 if direction == "noise" else 1.0
    x0 = {}
    for name in EDGES:
        e = Edge.parse(name)
        xs = _sender_only_input(s, c, e, direction)
        xb = _sender_only_input(s, c, Edge("none", e.receiver, e.kind), direction)  # no sender: the base input
        m0 = _receiver_metric(s, base_b, e, xb)
        ref = sign * float((_receiver_metric(s, base_b, e, xs) - m0).mean())
        assert exact[name] == pytest.approx(ref, abs=1e-9), name
        t = 1e-4
        dd = (_receiver_metric(s, base_b, e, t * (xs - xb), add=True)
              - _receiver_metric(s, base_b, e, -t * (xs - xb), add=True)) / (2 * t)
        assert atp[name] == pytest.approx(sign * float(dd.mean()), abs=1e-6), name
        x0[name] = (xs, xb)
    assert max(abs(exact[n]) for n in EDGES) > 1e-2 and max(abs(exact[n] - atp[n]) for n in EDGES) > 1e-4


def test_ig_edges_equal_brute_force_path_average():
    """EAP-IG with 3 steps: (x_r(s) - x_r) . dm/dx_r averaged over runs whose embedding output is
    e_base + alpha (e_src - e_base), alpha = 1/6, 1/2, 5/6; brute force by central differences in those runs."""
    s, c = _f64()
    ig = _edge_effects(s, c, "ig", "denoise", batch_size=8, steps=3)[0]
    atp = _edge_effects(s, c, "atp", "denoise", batch_size=8)[0]
    with torch.no_grad():
        e_base, _ = layer_inputs(s, c.corrupt)
        e_src, _ = layer_inputs(s, c.clean)
    for name in EDGES:
        e = Edge.parse(name)
        d = _sender_only_input(s, c, e, "denoise") - _sender_only_input(s, c, Edge("none", e.receiver, e.kind),
                                                                         "denoise")
        t, ref = 1e-4, 0.0
        for alpha in (1 / 6, 1 / 2, 5 / 6):
            emb = e_base + alpha * (e_src - e_base)
            dd = (_receiver_metric(s, c.corrupt, e, t * d, add=True, embed=emb)
                  - _receiver_metric(s, c.corrupt, e, -t * d, add=True, embed=emb)) / (2 * t)
            ref += float(dd.mean()) / 3
        assert ig[name] == pytest.approx(ref, abs=1e-6), name
    assert max(abs(ig[n] - atp[n]) for n in EDGES) > 1e-3  # the path average is not the base-point gradient


def test_ig_tends_to_exact_when_the_model_is_near_linear_along_the_path():
    """Corrupted tokens made near copies of the clean ones (input change eps): the model is linear along the
    path to first order, and IG's relative error against exact edge patching falls with eps."""
    def rel_error(eps: float | None) -> float:
        s = _subject()
        s.model.double()
        c = make_contrast(s, *_pairs(1, seed=2), metric=LogOdds(1))  # one word replaced, same length
        if eps is not None:
            with torch.no_grad():
                emb = s.model.bert.embeddings.word_embeddings.weight
                g = torch.Generator().manual_seed(0)
                diff = c.clean["input_ids"] != c.corrupt["input_ids"]
                (a,), (b,) = c.clean["input_ids"][diff].tolist(), c.corrupt["input_ids"][diff].tolist()
                emb[b] = emb[a] + eps * torch.randn(emb.shape[1], generator=g, dtype=emb.dtype)
        exact = _edge_effects(s, c, "exact", "noise", batch_size=8)[0]
        ig = _edge_effects(s, c, "ig", "noise", batch_size=8, steps=4)[0]
        return max(abs(ig[k] - exact[k]) for k in exact) / max(abs(v) for v in exact.values())

    far, near, nearer = rel_error(None), rel_error(1e-2), rel_error(1e-3)
    assert nearer < 2e-2 and nearer < near / 5 and near < far, (far, near, nearer)


def test_edge_names_and_bad_requests():
    s, c = _f64()
    assert Edge.parse("L0H0->L1H2.v") == Edge("L0H0", "L1H2", "v") and Edge.parse("L0H0->L1H2.v").name == "L0H0->L1H2.v"
    assert all(Edge.parse(e).name == e for e in all_edges(s))
    with pytest.raises(ValueError, match="sender->receiver.kind"):
        Edge.parse("L0H0-L1H2")
    with pytest.raises(ValueError, match="edge method"):
        edge_scores(s, c, method="path")
    with pytest.raises(ValueError, match="steps must be"):
        edge_scores(s, c, method="ig", steps=0)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
@pytest.mark.parametrize("align", ["pad", "strict"])
def test_circuit_run_equals_the_old_per_receiver_code(kind, align):
    """The edge-circuit run (receiver inputs as corrupted values plus sender deltas, receivers with equal
    senders computed once, nodes that send nothing or receive nothing under equal masks not recomputed)
    equals the per-receiver mixing it replaced, on random edge sets of every density; padded pairs (masks
    differ) and same-length pairs (masks equal)."""
    from _circuits_reference import old_edge_logits
    from test_patching import _pairs

    from interp.circuits import _edge_logits, _values

    s, c = _f64(kind)
    if align == "strict":
        c = make_contrast(s, *_pairs(5, seed=3, lengths=(4, 3)), metric=LogOdds(1))
        assert torch.equal(c.clean["attention_mask"], c.corrupt["attention_mask"])
    edges = all_edges(s)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        cv, rv = _values(s, c.metric, c.clean), _values(s, c.metric, c.corrupt)
        for p in (0.0, 0.003, 0.01, 0.03, 0.1, 0.5, 0.9, 1.0):
            keep = {e for e, u in zip(edges, torch.rand(len(edges), generator=gen)) if u < p}
            new, old = _edge_logits(s, cv, rv, keep), old_edge_logits(s, cv, rv, keep)
            assert torch.allclose(new, old, atol=1e-10, rtol=0), (p, (new - old).abs().max())
        assert not torch.allclose(_edge_logits(s, cv, rv, set(edges)), _edge_logits(s, cv, rv, set()), atol=1e-3)
