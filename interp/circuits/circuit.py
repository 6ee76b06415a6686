"""The result of circuit discovery: nodes, edges, every candidate's score, metadata; JSON round trip."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Circuit:
    """Nodes, edges ("sender->receiver.kind"), scores of every candidate, and metadata."""

    nodes: list[str]
    edges: list[str]
    scores: dict[str, float]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps({"nodes": self.nodes, "edges": self.edges, "scores": self.scores,
                           "metadata": self.metadata}, indent=2, sort_keys=True, default=str)
        if path is not None:
            from interp.provenance import atomic_write_bytes
            atomic_write_bytes(path, (text + "\n").encode())
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> Circuit:
        text = Path(source).read_text() if not str(source).lstrip().startswith("{") else str(source)
        d = json.loads(text)
        return cls(list(d["nodes"]), list(d["edges"]), {k: float(v) for k, v in d["scores"].items()},
                   dict(d.get("metadata", {})))

