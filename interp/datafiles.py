"""Read example files: JSON lines (one example dict per line) or HANS tab-separated files."""
from __future__ import annotations

import json
from pathlib import Path


def read_examples(path: str | Path) -> list[dict]:
    """Example dicts from a .jsonl/.json file (one per line) or a HANS .txt/.tsv file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Data file {path} does not exist.")
    if path.suffix in (".jsonl", ".json"):
        out = []
        with path.open() as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"line {lineno}: not valid JSON ({e.msg})") from None
        return out
    if path.suffix in (".txt", ".tsv"):
        from interp.data.hans import load_hans
        return load_hans(path)
    raise ValueError(f"Unknown data format {path.suffix!r}: use .jsonl (one example per line) or a HANS .txt/.tsv file.")
