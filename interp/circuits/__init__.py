"""Circuit discovery for post-LayerNorm encoders (BERT, RoBERTa, DistilBERT) and pre-LayerNorm ones (ViT):
nodes and edges.

Why not TransformerLens-style edge attribution: it writes a receiver's input as the sum of sender
outputs, which holds for pre-LN models only. In a post-LN encoder every block ends in a LayerNorm, so
the layer input is a nonlinear function of all earlier outputs.

Our definition (valid for any residual architecture, exact through the LayerNorms):
- Nodes: `input` (embedding output), heads `L{l}H{h}`, MLPs `L{l}M`, and `logits`.
- Edges: sender -> receiver input, where receivers are a head's query, key or value input
  (`L{l}H{h}.q|k|v`), an MLP's input (`L{l}M.in`) and the classifier input (`logits.in`). Heads feed
  MLPs of their own layer and everything in later layers.
- The input that receiver r sees is recomputed from the embedding and all component outputs before
  it, re-running every LayerNorm on the way: `x_r = F_r(embed, {o_c})`. Patching edge s -> r means r
  alone sees `F_r` with sender s at its source value and every other component at its base value;
  every other component, and the rest of the forward pass, is untouched (path patching, Wang et al.
  2022, Goldowsky-Dill et al. 2023, with the residual recomputed rather than summed).
- Edge scores (edges.py): `exact` runs that patch for every edge, batched over all senders and heads
  of a receiver layer (exact.py); `atp` dots the exact sender-only input change `x_r(s) - x_r` through
  the LayerNorms (inputs.py, one walk over the layers for all senders) with d metric / d x_r from one
  backward pass (linear on the receiver side only); `ig` averages that gradient over `steps` points
  between the base and source embeddings (EAP-IG).
- Evaluating a circuit (edge set E, evaluation.py): each receiver r computes its input from clean
  values of the senders with an edge s -> r in E (their values in this circuit run) and corrupted values
  of all other senders, layer by layer (a layer whose z and mlp_out are both set is rebuilt from them
  alone: output projection, residuals, LayerNorms). With all edges this is the clean run, with none the
  corrupted run (both tested). Faithfulness = (m_circuit - m_corrupt) / (m_clean - m_corrupt);
  completeness = 1 - faithfulness of the complement (how much of the effect the rest of the model cannot
  carry). Node circuits: non-circuit heads/MLPs take corrupted values in one ordinary forward pass.

Pre-LN encoders (ViT): the residual stream is the plain sum of the embedding and component outputs, and
every receiver reads the LayerNorm of its own sum (q/k/v: the layer's attention LayerNorm; MLP: its MLP
LayerNorm; the classifier: the final LayerNorm inside its head). Patching s -> r changes that sum by
s's output change and recomputes r's LayerNorm; `atp` takes the change after the LayerNorm exactly and the
gradient at the LayerNorm's output (runs.receiver_view; classifier: at the stream). Checked against
brute force with plain hooks in tests/test_circuits_preln.py.

Scores are "importance" = share of the clean-corrupt gap the component carries: for
`direction="noise"` (patch corrupted values into the clean run) `(m_clean - m)/(m_clean - m_corrupt)`,
for `"denoise"` `(m - m_corrupt)/(m_clean - m_corrupt)`. Pruning (discovery.py) keeps the top-|score|
nodes or edges, the fewest that reach `target` faithfulness to within `tolerance` (2% of the count by
default, 0 = exact): an interpolation search over the count on the sorted list, each count placed where
the measured faithfulness, read against the kept items' share of the total |score|, reaches the target,
guarded by bisection (`discovery.crossing`: 5-9 circuit runs, 6.3 on average, where a plain gallop and
bisection took 7-9, 8 on average, over three zoo models and targets 0.6, 0.8, 0.9). Faithfulness and completeness are reported with paired bootstrap 95% intervals over pairs.

No-signal guard (interp.signal): there is nothing to be faithful to when the clean - corrupted gap's
95% interval includes 0 (or |gap| < 2 SE). `discover` then raises NoSignalError before scoring;
with `allow_no_signal=True` it returns a Circuit with the raw (unnormalised) metric changes as scores,
no nodes or edges, `metadata["no_signal"] = True` and faithfulness None. `node_scores` and
`edge_scores` raise likewise, or return NaN scores under the flag. A NaN or inf in a layer's output,
site value, gradient or circuit run raises FloatingPointError naming the model and site.

Modules, one job each: graph (names, typed Edge), runs (per-copy component values, the residual rebuilt
from outputs), inputs (sender-only receiver inputs, receiver gradients), exact (batched receiver
recomputation), edges (edge scores), nodes (node scores), evaluation (circuit runs, faithfulness),
circuit (the result type), discovery (pruning and discover).
"""
from __future__ import annotations

from interp.circuits.circuit import Circuit
from interp.circuits.discovery import _no_signal_circuit, auroc, discover, prune
from interp.circuits.edges import METHODS, _edge_effects, edge_scores
from interp.circuits.evaluation import (
    _edge_logits,
    _faith,
    _mean,
    edge_run_values,
    edge_runner,
    evaluate_edges,
    evaluate_nodes,
    faithfulness_ci,
    node_run_values,
    node_runner,
)
from interp.circuits.exact import _exact_edge
from interp.circuits.graph import (
    Edge,
    _check_arch,
    _check_names,
    _parse_node,
    all_edges,
    node_names,
    receivers_at,
    sender_names,
    senders_before,
)
from interp.circuits.inputs import receiver_grads, sender_inputs
from interp.circuits.nodes import _node_effects, _normalised, _require, _signal_of, node_scores
from interp.circuits.runs import _Values, _values

__all__ = ["Circuit", "Edge", "METHODS", "all_edges", "auroc", "discover", "edge_run_values", "edge_runner", "edge_scores",
           "evaluate_edges", "evaluate_nodes", "faithfulness_ci", "node_names", "node_run_values", "node_runner", "node_scores",
           "prune", "receiver_grads", "receivers_at", "sender_inputs", "sender_names", "senders_before",
           "_check_arch", "_check_names", "_edge_effects", "_edge_logits", "_exact_edge", "_faith", "_mean",
           "_no_signal_circuit", "_node_effects", "_normalised", "_parse_node", "_receiver_inputs",
           "_require", "_signal_of", "_values", "_Values"]
