"""Circuit graph figure: nodes placed by layer (rows) and head (columns), edges weighted by score."""
from __future__ import annotations

from pathlib import Path
from typing import Any

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


def draw_circuit(circuit: Any, path: str | Path, title: str | None = None) -> Path:
    """Save the circuit graph. Edge circuits draw sender -> receiver (label q/k/v/in); node circuits
    draw the kept nodes with their scores. A no-signal circuit (nothing kept) draws every candidate
    node with its raw score, titled "no signal: raw metric changes"."""
    meta = circuit.metadata
    L, H = int(meta.get("n_layers", 1)), int(meta.get("n_heads", 1))
    fig, ax = new_figure(figsize=(1.5 + 0.7 * H, 1.5 + 0.9 * L))
    # all candidate heads/MLPs in grey
    for l in range(L):
        for h in range(H):
            ax.plot(*_pos(f"L{l}H{h}", L, H), "o", color="0.85", ms=10, zorder=1)
        ax.plot(*_pos(f"L{l}M", L, H), "s", color="0.85", ms=10, zorder=1)
    smax = max([abs(v) for v in circuit.scores.values()] or [1.0]) or 1.0
    for e in circuit.edges:
        s, r = e.split("->")
        rn, kind = r.split(".")
        (x0, y0), (x1, y1) = _pos(s, L, H), _pos(rn, L, H)
        w = 0.5 + 4 * abs(circuit.scores.get(e, 0.0)) / smax
        color = {"q": "tab:blue", "k": "tab:green", "v": "tab:red"}.get(kind, "tab:purple")
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", lw=w, color=color, alpha=0.8), zorder=2)
    shown = circuit.nodes
    if meta.get("no_signal"):  # nothing pruned: every candidate node with its raw score (edge scores: JSON)
        shown = [n for n in circuit.scores if "->" not in n]
    for n in shown:
        x, y = _pos(n, L, H)
        ax.plot(x, y, "s" if n.endswith("M") else "o", color="tab:orange", ms=13, zorder=3)
        ax.text(x, y - 0.28, f"{n}\n{circuit.scores[n]:.2f}" if n in circuit.scores else n, ha="center", va="top",
                fontsize=7, zorder=4)
    ax.set_yticks(range(L))
    ax.set_ylabel("layer")
    ax.set_xlabel("head (squares: MLP)")
    ax.set_xlim(-1, H + 1.5)
    ax.set_ylim(-1.6, L + 0.6)
    ax.set_title(title or _title(meta), fontsize=9)
    return save(fig, path)
