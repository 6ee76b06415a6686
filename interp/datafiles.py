"""Read example files: JSON lines (one example dict per line) or HANS tab-separated files."""
from __future__ import annotations

import json
from pathlib import Path


def read_examples(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Data file {path} does not exist.")
    if path.suffix in (".jsonl", ".json"):
        with path.open() as f:
            return [json.loads(line) for line in f if line.strip()]
    if path.suffix in (".txt", ".tsv"):
        from interp.data.hans import load_hans
        return load_hans(path)
    raise ValueError(f"Unknown data format {path.suffix!r}: use .jsonl (one example per line) or a HANS .txt/.tsv file.")
