"""Circuit graph figure: nodes placed by layer (rows) and head (columns), edges weighted by score."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from interp.plot import new_figure, save


def _pos(node: str, n_layers: int, n_heads: int) -> tuple[float, float]:
    if node == "input":
        return (n_heads / 2, -1.0)
    if node == "logits":
        return (n_heads / 2, float(n_layers))
    if node.endswith("M"):
        return (float(n_heads) + 0.5, int(node[1:-1]) + 0.5)
    l, h = node[1:].split("H")
    return (float(h), float(l))


def _title(meta: dict) -> str:
    if meta.get("no_signal"):
        return f"{meta.get('level', '')} circuit: no signal: raw metric changes (not pruned)"
    f, c = meta.get("faithfulness"), meta.get("completeness")
    f = float("nan") if f is None else f
    c = float("nan") if c is None else c
    fci = meta.get("faithfulness_ci95") or [float("nan")] * 2
    return f"{meta.get('level', '')} circuit, faithfulness {f:.2f} [{fci[0]:.2f}, {fci[1]:.2f}], completeness {c:.2f}"


EDGE_COLORS = {"q": "tab:blue", "k": "tab:green", "v": "tab:red", "in": "tab:purple"}
EDGE_KINDS = {"q": "into a head's query", "k": "into a head's key", "v": "into a head's value",
              "in": "into an MLP / the logits"}
MAX_EDGES = 40


def draw_circuit(circuit: Any, path: str | Path, title: str | None = None, subtitle: str | None = None,
                 max_edges: int = MAX_EDGES) -> Path:
    """Save `circuit_figure(...)` to `path` (PNG and SVG)."""
    return save(circuit_figure(circuit, title, subtitle, max_edges), path)


def circuit_figure(circuit: Any, title: str | None = None, subtitle: str | None = None,
                   max_edges: int = MAX_EDGES) -> Figure:
    """The circuit graph on the explorer's fixed grid (layer rows, layer 0 at the bottom next to the input;
    head columns; each layer's MLP right of its heads). Takes an `interp.circuits.Circuit` (or anything
    with `.edges`, `.nodes`, `.scores` and `.metadata` with n_layers and n_heads). Edge circuits draw the `max_edges` strongest sender -> receiver edges
    (width ~ |score|, colour = the receiver's input: q/k/v/MLP, in a legend; the rest are counted in
    the title); node circuits draw the kept nodes with their scores. A no-signal circuit (nothing kept)
    draws every candidate node with its raw score, titled "no signal: raw metric changes".
    `subtitle` (e.g. the model and data) goes under the title."""
    from matplotlib.lines import Line2D

    meta = circuit.metadata
    L, H = int(meta.get("n_layers", 1)), int(meta.get("n_heads", 1))
    fig, ax = new_figure(figsize=(2.5 + 0.7 * H, 1.8 + 0.9 * L))
    # all candidate heads/MLPs in grey (one artist per marker shape: a figure draws in a fraction of a second)
    for marker, names in (("o", [f"L{l}H{h}" for l in range(L) for h in range(H)]), ("s", [f"L{l}M" for l in range(L)])):
        xs, ys = zip(*[_pos(n, L, H) for n in names])
        ax.plot(xs, ys, marker, color="0.85", ms=10, zorder=1, linestyle="none")
    edges = sorted(circuit.edges, key=lambda e: -abs(circuit.scores.get(e, 0.0)))
    shown_edges = edges[:max_edges]
    smax = max([abs(circuit.scores.get(e, 0.0)) for e in shown_edges] or [1.0]) or 1.0
    for e in reversed(shown_edges):  # strongest drawn last, on top
        s, r = e.split("->")
        rn, kind = r.split(".")
        (x0, y0), (x1, y1) = _pos(s, L, H), _pos(rn, L, H)
        frac = abs(circuit.scores.get(e, 0.0)) / smax
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2,
                    arrowprops=dict(arrowstyle="->", lw=0.4 + 3.6 * frac, color=EDGE_COLORS.get(kind, "tab:purple"),
                                    alpha=0.25 + 0.65 * frac, connectionstyle="arc3,rad=0.12"))
    shown = circuit.nodes
    if meta.get("no_signal"):  # nothing pruned: every candidate node with its raw score (edge scores: JSON)
        shown = [n for n in circuit.scores if "->" not in n]
    for marker in ("o", "s"):
        at = [_pos(n, L, H) for n in shown if n.endswith("M") == (marker == "s")]
        if at:
            ax.plot(*zip(*at), marker, color="tab:orange", ms=13, zorder=3, linestyle="none")
    for n in shown:
        x, y = _pos(n, L, H)
        label = n if n in ("input", "logits") else (f"{n[1:-1]}.M" if n.endswith("M") else n[1:].replace("H", "."))
        ax.text(x, y - 0.28, f"{label}\n{circuit.scores[n]:.2f}" if n in circuit.scores else label, ha="center",
                va="top", fontsize=7, zorder=4)
    if shown_edges:
        kinds = sorted({e.split(".")[-1] for e in shown_edges}, key=list(EDGE_COLORS).index)
        ax.legend([Line2D([0], [0], color=EDGE_COLORS[k], lw=2) for k in kinds], [EDGE_KINDS[k] for k in kinds],
                  fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="edge (width ~ |score|)",
                  title_fontsize=7)
    ax.set_yticks(range(L))
    ax.set_ylabel("layer")
    ax.set_xticks(range(H))
    ax.set_xlabel("head (squares: MLP; nodes labelled layer.head)")
    ax.set_xlim(-1, H + 1.5)
    ax.set_ylim(-1.6, L + 0.6)
    head = title or _title(meta)
    if len(edges) > len(shown_edges):
        head += f"\nstrongest {len(shown_edges)} of {len(edges)} edges shown (all in circuit.json)"
    ax.set_title(head + (f"\n{subtitle}" if subtitle else ""), fontsize=9)
    return fig


def circuit_part_figure(part: dict, n_layers: int, n_heads: int, title: str | None = None,
                        subtitle: str | None = None, max_edges: int = MAX_EDGES) -> Figure:
    """`circuit_figure` of the explorer's stored circuit (`interp.explore.data.circuit_part`: its pruned
    edges with scores and the guard's verdict); the nodes are the edges' endpoints."""
    from types import SimpleNamespace

    edges = [e for e, _ in part.get("edges") or []]
    scores = {e: float(s) for e, s in part.get("edges") or [] if s is not None}
    nodes = sorted({n for e in edges for n in (e.split("->")[0], e.split("->")[1].rsplit(".", 1)[0])})
    meta = {"n_layers": n_layers, "n_heads": n_heads, "level": "edge",
            **{k: part.get(k) for k in ("no_signal", "faithfulness", "faithfulness_ci95", "completeness")}}
    return circuit_figure(SimpleNamespace(edges=edges, nodes=nodes, scores=scores, metadata=meta), title, subtitle,
                          max_edges)
