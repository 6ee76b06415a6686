"""Circuits: exactness of the circuit run, a hand-built model with a planted circuit, JSON, bad input."""
from __future__ import annotations

import pytest
import torch
from conftest import make_pairs
from test_patching import _pairs, _subject

from interp.attribution import attribute
from interp.circuits import Circuit, all_edges, auroc, discover, edge_scores, evaluate_edges, evaluate_nodes, node_names
from interp.contrast import LogOdds, make_contrast
from interp.engine import layer_inputs
from interp.organisms import PlantedCircuit, planted_circuit, planted_circuit_pairs
from interp.patching import endpoint_metrics, patch
from interp.subject import load_subject

PLANTED_NODES, PLANTED_EDGES = set(PlantedCircuit.nodes), set(PlantedCircuit.edges)


pytestmark = pytest.mark.usefixtures("one_thread")


def planted_subject(noise: float = 5.0):
    """The planted-circuit organism (interp.organisms.planted_circuit) as a Subject."""
    org = planted_circuit(noise)
    return load_subject(org.model, tokenizer=org.tokenizer)


def planted_pairs(n: int = 12, seed: int = 0) -> tuple[list[dict], list[dict]]:
    return planted_circuit_pairs(n, seed)


@pytest.fixture(scope="module")
def planted():
    torch.set_num_threads(1)
    s = planted_subject()
    return s, make_contrast(s, *planted_pairs(), metric=LogOdds(0))


def test_planted_model_has_a_gap(planted):
    s, c = planted
    clean, corrupt = endpoint_metrics(s, c)
    assert clean - corrupt > 1.0


def test_patching_and_attribution_find_planted_heads(planted):
    s, c = planted
    rows = []
    for name, res in (("exact noise", patch(s, c, "head", False, "noise")),
                      ("exact denoise", patch(s, c, "head", False, "denoise")),
                      ("atp denoise", attribute(s, c, "head", False, "denoise")),
                      ("ig denoise", attribute(s, c, "head", False, "denoise", method="ig", steps=8))):
        eff = (1 - res.scores) if res.direction == "noise" else res.scores
        scores = {f"L{l}H{h}": float(eff[l, h]) for l in range(s.n_layers) for h in range(s.n_heads)}
        a = auroc(scores, PLANTED_NODES)
        rows.append((name, a))
        top2 = set(sorted(scores, key=lambda k: -abs(scores[k]))[:2])
        assert top2 == PLANTED_NODES, (name, scores)
    print("planted heads, AUROC:", rows)


def test_edge_scores_find_planted_edges(planted):
    s, c = planted
    rows = []
    for method in ("exact", "atp", "ig"):
        scores, clean, corrupt = edge_scores(s, c, method=method, direction="noise")
        assert set(scores) == set(all_edges(s))
        a = auroc(scores, PLANTED_EDGES)
        rows.append((method, round(a, 4), len(scores)))
        top = sorted(scores, key=lambda k: -abs(scores[k]))[:3]
        assert set(top) == PLANTED_EDGES, (method, [(k, round(scores[k], 3)) for k in top])
    print("planted edges (3 of", rows[0][2], "), AUROC:", rows)


def test_discover_recovers_planted_circuit_and_roundtrips(planted, tmp_path):
    s, c = planted
    node = discover(s, c, level="node", method="exact", target=0.9)
    assert set(node.nodes) == PLANTED_NODES, node.nodes
    assert node.metadata["faithfulness"] >= 0.9 and node.metadata["completeness"] > 0.5
    edge = discover(s, c, level="edge", method="atp", target=0.9)
    assert set(edge.edges) <= PLANTED_EDGES | set(all_edges(s))
    assert PLANTED_EDGES >= set(edge.edges) and len(edge.edges) >= 2, edge.edges
    assert edge.metadata["faithfulness"] >= 0.9
    for circ in (node, edge):  # faithfulness and completeness come with paired bootstrap intervals over pairs
        m = circ.metadata
        assert not m["no_signal"] and m["signal"]["significant"] and m["signal"]["n"] == len(c)
        for key in ("faithfulness", "completeness"):
            lo, hi = m[f"{key}_ci95"]
            assert lo - 1e-9 <= m[key] <= hi + 1e-9, (key, m[key], lo, hi)
    print(f"node circuit {node.nodes} faith {node.metadata['faithfulness']:.3f} comp "
          f"{node.metadata['completeness']:.3f}; edge circuit {edge.edges} faith {edge.metadata['faithfulness']:.3f} "
          f"comp {edge.metadata['completeness']:.3f}")
    path = tmp_path / "c.json"
    edge.to_json(path)
    back = Circuit.from_json(path)
    assert back == edge and Circuit.from_json(edge.to_json()) == edge


def test_circuit_run_is_exact_at_the_extremes():
    """All edges = the clean run; no edges = the corrupted run (LayerNorms recomputed per receiver)."""
    s = _subject()
    c = make_contrast(s, *_pairs(4), metric=LogOdds(1))
    clean, corrupt = endpoint_metrics(s, c, allow_no_signal=True)  # exactness of the runs, not shares
    assert abs(clean - corrupt) > 1e-2
    assert evaluate_edges(s, c, all_edges(s)) == pytest.approx(clean, abs=1e-5)
    assert evaluate_edges(s, c, []) == pytest.approx(corrupt, abs=1e-5)
    assert evaluate_nodes(s, c, node_names(s)) == pytest.approx(clean, abs=1e-5)
    # removing one strong edge moves the metric
    full = all_edges(s)
    assert any(abs(evaluate_edges(s, c, [e for e in full if e != x]) - clean) > 1e-3
               for x in full if x.endswith("logits.in"))


def test_exact_edge_to_logits_matches_direct_computation():
    """Edge L{last}H{h} -> logits: patch that head with the last MLP frozen, an independent forward."""
    s = _subject()
    c = make_contrast(s, *_pairs(4, seed=2), metric=LogOdds(1))  # a real gap: normalised scores defined
    scores, clean, corrupt = edge_scores(s, c, method="exact", direction="noise")
    L = s.n_layers - 1
    with torch.no_grad():
        _, cc = s.run(c.clean, read=[f"blocks.{L}.hook_mlp_out"])
        _, rc = s.run(c.corrupt, read=[f"blocks.{L}.attn.hook_z"])
        for h in range(s.n_heads):
            def w(v, h=h):
                v = v.clone()
                v[:, :, h] = rc[f"blocks.{L}.attn.hook_z"][:, :, h]
                return v
            logits, _ = s.run(c.clean, write={f"blocks.{L}.attn.hook_z": w,
                                               f"blocks.{L}.hook_mlp_out": cc[f"blocks.{L}.hook_mlp_out"]})
            m = float(c.metric(logits).double().mean())
            assert scores[f"L{L}H{h}->logits.in"] == pytest.approx((clean - m) / (clean - corrupt), abs=1e-4)


def test_bad_requests_are_clear_errors():
    s = _subject()
    c = make_contrast(s, *_pairs(3))
    with pytest.raises(ValueError, match="Unknown edge"):
        evaluate_edges(s, c, ["L9H0->logits.in"])
    with pytest.raises(ValueError, match="level must be"):
        discover(s, c, level="path")

    class FakeArch:
        family = "vit"
        kinds = s.arch.kinds
    s.arch = FakeArch()
    with pytest.raises(ValueError, match="lacks"):
        discover(s, c)


def test_cli_patch_and_circuit_write_results(tmp_path):
    import json

    from interp.cli import main
    s = _subject()
    s.model.save_pretrained(tmp_path / "m")
    s.tokenizer.save_pretrained(tmp_path / "m")
    clean, corrupt = _pairs(4, seed=2)  # a real gap in label 1's log-odds
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"clean": a, "corrupt": b}) for a, b in zip(clean, corrupt)))
    assert main(["patch", "--model", str(tmp_path / "m"), "--pairs", str(pairs), "--label", "1",
                 "--out", str(tmp_path / "p")]) == 0
    rec = json.loads((tmp_path / "p" / "patching.json").read_text())
    assert rec["result"]["shape"] == [3, 4] and "versions" in rec and rec["seed"] == 0
    assert (tmp_path / "p" / "patching.png").stat().st_size > 1000
    assert main(["circuit", "--model", str(tmp_path / "m"), "--pairs", str(pairs), "--label", "1", "--level", "edge",
                 "--faithfulness", "0.5", "--out", str(tmp_path / "c")]) == 0
    circ = Circuit.from_json(tmp_path / "c" / "circuit.json")
    assert circ.metadata["faithfulness"] >= 0.5 and (tmp_path / "c" / "circuit.png").exists()


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_chain_equals_a_forward_pass_with_outputs_written(kind):
    """The old circuit code's _chain (interp.engine's output/LayerNorm algebra, no attention or MLP run) against a hooks forward pass in which every layer's z
    and mlp_out are overwritten with another input's values: same resid_pre and resid_mid everywhere."""
    from _circuits_reference import _chain
    s = _subject(kind)
    clean, corrupt = _pairs(4, seed=3)
    c = make_contrast(s, clean, corrupt, metric=LogOdds(1))
    L = s.n_layers
    with torch.no_grad():
        _, other = s.run(c.corrupt, read=[f"blocks.{l}.{k}" for l in range(L) for k in ("attn.hook_z", "hook_mlp_out")])
        z = [other[f"blocks.{l}.attn.hook_z"] for l in range(L)]
        mlp = [other[f"blocks.{l}.hook_mlp_out"] for l in range(L)]
        write = {f"blocks.{l}.attn.hook_z": z[l] for l in range(L)}
        write.update({f"blocks.{l}.hook_mlp_out": mlp[l] for l in range(L)})
        reads = [f"blocks.{l}.{k}" for l in range(L) for k in ("hook_resid_post", "hook_resid_mid")]
        _, ref = s.run(c.clean, read=reads, write=write)
        _, plain = s.run(c.clean, read=reads)
        embed, _ = layer_inputs(s, c.clean)
        pres, mids = _chain(s, embed, 0, L, z, mlp)
        for l in range(L):
            torch.testing.assert_close(mids[l], ref[f"blocks.{l}.hook_resid_mid"], atol=1e-5, rtol=0)
            torch.testing.assert_close(pres[l + 1], ref[f"blocks.{l}.hook_resid_post"], atol=1e-5, rtol=0)
        assert (ref[f"blocks.{L - 1}.hook_resid_post"] - plain[f"blocks.{L - 1}.hook_resid_post"]).abs().max() > 1e-2
        # resumed at layer 1 with layer 1's mid as well
        pres1, mids1 = _chain(s, ref["blocks.0.hook_resid_post"], 1, 1, z, mlp, mid_at_stop=True)
        torch.testing.assert_close(mids1[1], ref["blocks.1.hook_resid_mid"], atol=1e-5, rtol=0)


def _exact_edge_full(s, metric, base, layer, receiver, xs):
    """Reference: run the receiver's whole layer with that head's q/k/v (or the MLP input) read from
    xs through hooks, every other projection from the layer input, then every later layer in full."""
    from _circuits_reference import _run_layer_with_receivers

    from interp.circuits import _parse_node
    from interp.engine import expand_kwargs, first_output
    k, B = xs.shape[:2]
    flat = xs.reshape(k * B, *xs.shape[2:])
    _, _, h = _parse_node(receiver.split(".")[0])
    kind = receiver.split(".")[1]
    kw = expand_kwargs(base.kwargs, k)
    hx = (base.embed if layer == 0 else base.resid[layer - 1]).repeat(k, 1, 1)
    per_head = hx[:, :, None, :].repeat(1, 1, s.n_heads, 1)  # [kB, pos, head, d]: the layer input
    ins = {kk: per_head for kk in "qkv"}
    if kind != "in":
        ins[kind] = per_head.clone()
        ins[kind][:, :, h] = flat
    x = _run_layer_with_receivers(s, layer, kw, ins["q"], ins["k"], ins["v"], flat if kind == "in" else None,
                                  hx)["_out"]
    for blk in s.layers[layer + 1:]:
        x = first_output(blk(x, **kw))
    return metric(s.arch.head(s.model, x)).double().view(k, B).sum(1)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_exact_edge_shortcut_equals_full_layers(kind):
    """circuits._exact_edge (one head recomputed, readout-only last layer) against the full-layer run,
    for q, k, v and MLP receivers at every layer, on padded pairs."""
    from interp.circuits import _exact_edge, _values
    s = _subject(kind)
    clean, corrupt = make_pairs(5, seed=11), make_pairs(5, seed=12)
    c = make_contrast(s, clean, corrupt, metric=LogOdds(1), align="pad")
    with torch.no_grad():
        base, src = _values(s, c.metric, c.clean), _values(s, c.metric, c.corrupt)
        assert (c.clean["attention_mask"] == 0).any()
        for layer in range(s.n_layers):
            pre_src = src.embed if layer == 0 else src.resid[layer - 1]
            for receiver, x in ((f"L{layer}H1.q", pre_src), (f"L{layer}H2.k", pre_src), (f"L{layer}H0.v", pre_src),
                                (f"L{layer}M.in", src.mid[layer])):
                xs = torch.stack([x, 0.5 * x + 0.5 * (base.embed if layer == 0 else base.resid[layer - 1])])
                got = torch.tensor(_exact_edge(s, c.metric, base, layer, receiver, xs), dtype=torch.float64)
                ref = _exact_edge_full(s, c.metric, base, layer, receiver, xs)
                torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-6)  # sums of ~5 metrics of ~30: float32
                assert (ref - base.metric_sum).abs().max() > 1e-4, receiver  # the receiver's input mattered
