"""Graph names of a circuit: nodes (`input`, `L{l}H{h}`, `L{l}M`, `logits`), receivers (`L{l}H{h}.q|k|v`,
`L{l}M.in`, `logits.in`), edges `sender->receiver` and the typed `Edge`, for post- and pre-LayerNorm encoders."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from interp.arch import ARCHS


class Edge(NamedTuple):
    """A typed edge: `sender` node, `receiver` node and the receiver's input `kind` (q, k, v, in)."""

    sender: str
    receiver: str
    kind: str

    @classmethod
    def parse(cls, name: str) -> Edge:
        """`"L0H0->L1H2.v"` -> Edge("L0H0", "L1H2", "v"); ValueError naming the expected form."""
        try:
            sender, target = name.split("->")
            receiver, kind = target.split(".")
        except ValueError:
            raise ValueError(f"Edge names look like 'L0H0->L1H2.v' (sender->receiver.kind), not {name!r}.") from None
        return cls(sender, receiver, kind)

    @property
    def name(self) -> str:
        return f"{self.sender}->{self.receiver}.{self.kind}"


def _check_arch(subject: Any) -> tuple[str, str, str, str]:
    """Per layer: the query, key and value projections and the module whose input is the MLP input
    (from interp.arch): post-LN receivers read the residual stream, pre-LN ones its LayerNorm (runs.receiver_view)."""
    lm = getattr(subject.arch, "layer_math", None)
    if lm is None:
        supported = sorted(f for f, a in ARCHS.items() if a.layer_math is not None)
        raise ValueError(f"Circuit discovery needs query/key/value and MLP-input sites, which the "
                         f"{subject.arch.family!r} architecture map lacks (supported: {supported}).")
    return lm.q, lm.k, lm.v, subject.arch.mlp_modules[0]


def node_names(subject: Any) -> list[str]:
    """Heads and MLPs in forward order (the candidates of a node circuit)."""
    out = []
    for l in range(subject.n_layers):
        out += [f"L{l}H{h}" for h in range(subject.n_heads)] + [f"L{l}M"]
    return out


def sender_names(subject: Any) -> list[str]:
    """Every sender in forward order: `input`, then per layer its heads and its MLP."""
    return ["input"] + node_names(subject)


def receivers_at(subject: Any, layer: int) -> list[str]:
    """Receivers of layer `layer`: per head its q, k, v input, then the MLP input."""
    return [f"L{layer}H{h}.{k}" for h in range(subject.n_heads) for k in "qkv"] + [f"L{layer}M.in"]


def senders_before(subject: Any, receiver: str) -> list[str]:
    """Senders that can reach a receiver: the input, heads/MLPs of earlier layers, heads of the same
    layer for an MLP receiver."""
    if receiver == "logits.in":
        return ["input"] + node_names(subject)
    node, kind = receiver.split(".")
    layer = int(node[1:node.index("H" if "H" in node else "M")])
    out = ["input"] + [n for n in node_names(subject) if int(n[1:n.index("H" if "H" in n else "M")]) < layer]
    if kind == "in":
        out += [f"L{layer}H{h}" for h in range(subject.n_heads)]
    return out


def all_edges(subject: Any) -> list[str]:
    recv = [r for l in range(subject.n_layers) for r in receivers_at(subject, l)] + ["logits.in"]
    return [f"{s}->{r}" for r in recv for s in senders_before(subject, r)]


def _parse_node(n: str) -> tuple[str, int, int]:
    """('input'|'head'|'mlp'|'logits', layer, head)."""
    if n in ("input", "logits"):
        return n, -1, -1
    if n.endswith("M"):
        return "mlp", int(n[1:-1]), -1
    l, h = n[1:].split("H")
    return "head", int(l), int(h)


def _check_names(subject: Any, names: Iterable[str], valid: Sequence[str], what: str) -> None:
    vs = set(valid)
    for n in names:
        if n not in vs:
            raise ValueError(f"Unknown {what} {n!r} for this {subject.n_layers}-layer, {subject.n_heads}-head "
                             f"{subject.arch.family} model (e.g. {list(valid)[:3]}).")

